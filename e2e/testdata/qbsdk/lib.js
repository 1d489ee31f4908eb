'use strict'
// What node-suite.js and browser-suite.js share: the environment the Go test
// sets, a runner of named checks, and small helpers.

// env is the node the Go test started (e2e/qbsdk_test.go, suiteEnv).
function env () {
  const need = name => {
    const v = process.env[name]
    if (!v) throw new Error(`environment variable ${name} is not set (run through go test ./e2e)`)
    return v
  }
  return {
    api: need('QB_API'), // REST host:port, HTTPS
    chat: need('QB_CHAT'), // XMPP domain
    xmppHost: need('QB_XMPP_HOST'),
    xmppPort: Number(need('QB_XMPP_PORT')),
    appId: Number(need('QB_APP_ID')),
    authKey: need('QB_AUTH_KEY'),
    authSecret: need('QB_AUTH_SECRET'),
    deadlineMs: Number(process.env.QB_DEADLINE_MS || 120000),
    debug: process.env.QB_DEBUG === '1',
    // browser path only
    pageURL: process.env.QB_PAGE_URL,
    wsURL: process.env.QB_WS_URL,
    chromium: process.env.QB_CHROMIUM
  }
}

// Suite runs named checks in order, each under its own time limit, and the
// whole under the deadline the Go test gave. It prints one line per passed
// check and stops at the first failure with its message; cleanup runs either
// way, and the process exits 0 only when every check passed.
class Suite {
  constructor (title, deadlineMs) {
    this.title = title
    this.deadlineMs = deadlineMs
    this.checks = []
  }

  check (name, fn, ms = 20000) {
    this.checks.push({ name, fn, ms })
  }

  async run (cleanup) {
    const started = Date.now()
    const hard = setTimeout(() => {
      console.error(`FAIL ${this.title}: the deadline of ${this.deadlineMs} ms passed`)
      process.exit(3)
    }, this.deadlineMs)
    let failed = null
    let passed = 0
    for (const c of this.checks) {
      const t0 = Date.now()
      try {
        await within(c.ms, `check "${c.name}"`, c.fn())
        passed++
        console.log(`ok   ${c.name} (${Date.now() - t0} ms)`)
      } catch (err) {
        failed = c.name
        console.error(`FAIL ${c.name} (${Date.now() - t0} ms): ${describe(err)}`)
        break
      }
    }
    try {
      await within(15000, 'cleanup', Promise.resolve().then(cleanup))
    } catch (err) {
      console.error(`cleanup: ${describe(err)}`)
      if (!failed) failed = 'cleanup'
    }
    clearTimeout(hard)
    const took = ((Date.now() - started) / 1000).toFixed(1)
    if (failed) {
      console.error(`${this.title}: ${passed} of ${this.checks.length} checks passed, stopped at "${failed}" (${took} s)`)
      process.exit(1)
    }
    console.log(`${this.title}: all ${passed} checks passed (${took} s)`)
    process.exit(0)
  }
}

function describe (err) {
  if (err && err.stack) return err.stack
  try {
    return JSON.stringify(err)
  } catch (_) {
    return String(err)
  }
}

// within rejects when promise takes longer than ms.
function within (ms, what, promise) {
  let timer
  return Promise.race([
    promise,
    new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

// call runs an SDK function that takes a node-style callback (err, result)
// and resolves with the result; err rejects with the SDK's error object as
// JSON. A callback that never comes is cut off after ms.
function call (what, fn, ms = 10000) {
  return within(ms, what, new Promise((resolve, reject) => {
    fn((err, res) => {
      if (err) {
        const e = new Error(`${what}: the SDK reported an error: ${safeJSON(err)}`)
        e.sdkError = err
        reject(e)
      } else {
        resolve(res)
      }
    })
  }))
}

// fails runs an SDK call that must fail and resolves with its error.
function fails (what, fn, ms = 10000) {
  return within(ms, what, new Promise((resolve, reject) => {
    fn((err, res) => {
      if (err) resolve(err)
      else reject(new Error(`${what}: expected an error, got ${safeJSON(res)}`))
    })
  }))
}

function safeJSON (v) {
  try {
    return JSON.stringify(v)
  } catch (_) {
    return String(v)
  }
}

const OBJECT_ID = /^[0-9a-f]{24}$/
const ISO_DATE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/

module.exports = { env, Suite, call, fails, within, safeJSON, OBJECT_ID, ISO_DATE }
