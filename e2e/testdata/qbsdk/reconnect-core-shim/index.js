'use strict'
// reconnect-core, the small API node-xmpp-core@5.0.x (QuickBlox SDK → node-xmpp-client
// → node-xmpp-core) was written against. That package depends on a GitHub tarball of
// reconnect-core's v0.0.1 branch, which cannot be installed from the npm registry, and
// npm's reconnect-core@1.x has another API ("this.connection.listen is not a function").
// package.json's "overrides" points reconnect-core here. Written for chatd from what
// node-xmpp-core's lib/Connection.js calls; no code of any reconnect-core is used.
//
// The contract node-xmpp-core relies on:
//
//   const inject = reconnect(createConnection)   // createConnection(...args) → stream
//   inject(options)                              // options.emitter: the object to equip
//
// inject installs on options.emitter (or a new EventEmitter, which it returns):
//
//   emitter.connect(...args) / emitter.listen(...args)
//       Start an attempt now: emit 'reconnect'(n, delay), call createConnection with
//       args (or, without arguments, the previous ones) and adopt the stream it returns.
//       It may be called while a stream is up: node-xmpp-core does so after STARTTLS
//       with the TLS stream layered over the TCP one, so the previous stream is only
//       let go of (our listeners removed), never ended.
//   emitter.end() / emitter.disconnect()
//       Stop reconnecting, end the current stream, emit 'disconnect'. Needs no `this`
//       (node-xmpp-core calls it unbound).
//   emitter.reset()             Restart the backoff from options.initialDelay.
//   emitter.connected           true between a stream's 'connect' and its end.
//   emitter.reconnect           Whether a lost stream is retried; true after inject and
//                               after each connect/listen, the caller may clear it.
//
// Events on the emitter: 'reconnect'(n, delay) as each attempt starts (node-xmpp-core
// restarts its XML parser and reads its own reconnect option on it), 'connect'(stream)
// then 'connection'(stream) when the stream emits 'connect' (at once when
// options.immediate is set, read at each attempt), 'disconnect'(err?) when the stream
// errs, ends or closes (once per stream), 'backoff'(n, delay) when a retry is scheduled,
// 'fail' when options.failAfter retries were used up.
//
// Options: initialDelay (1 s), maxDelay (30 s), type 'fibonacci' (default) or
// 'exponential', failAfter (no limit), immediate, emitter, onConnect (a 'connection'
// listener, also accepted as inject's second argument).

const { EventEmitter } = require('events')

// backoff returns the delays of successive retries: initialDelay, then growing
// (Fibonacci or doubling) up to maxDelay.
function backoff (opts) {
  const initial = opts.initialDelay > 0 ? opts.initialDelay : 1000
  const max = opts.maxDelay > 0 ? Math.max(opts.maxDelay, initial) : 30000
  let prev = 0
  let cur = initial
  return {
    next () {
      const d = Math.min(cur, max)
      if (opts.type === 'exponential') {
        cur = cur * 2
      } else {
        const n = prev + cur
        prev = cur
        cur = n
      }
      return d
    },
    reset () {
      prev = 0
      cur = initial
    }
  }
}

module.exports = function reconnect (createConnection) {
  if (typeof createConnection !== 'function') {
    throw new TypeError('reconnect-core: createConnection must be a function')
  }
  return function inject (opts, onConnect) {
    if (typeof opts === 'function') {
      onConnect = opts
      opts = {}
    }
    opts = opts || {}
    onConnect = onConnect || opts.onConnect
    const emitter = opts.emitter || new EventEmitter()
    const delays = backoff(opts)
    let args = []
    let stream = null // the adopted stream
    let release = null // removes our listeners from it
    let timer = null
    let retries = 0

    emitter.connected = false
    emitter.reconnect = true
    if (typeof onConnect === 'function') emitter.on('connection', onConnect)

    function cancelRetry () {
      if (timer) clearTimeout(timer)
      timer = null
    }

    function letGo () {
      if (release) release()
      release = null
      stream = null
    }

    function adopt (s) {
      letGo()
      stream = s
      let done = false
      const up = () => {
        if (done) return
        retries = 0
        delays.reset()
        emitter.connected = true
        emitter.emit('connect', s)
        emitter.emit('connection', s)
      }
      const down = (err) => {
        if (done) return
        letGo()
        emitter.connected = false
        emitter.emit('disconnect', err instanceof Error ? err : undefined)
        scheduleRetry()
      }
      s.on('error', down)
      s.on('end', down)
      s.on('close', down)
      if (!opts.immediate) s.on('connect', up)
      release = () => {
        done = true
        s.removeListener('error', down)
        s.removeListener('end', down)
        s.removeListener('close', down)
        s.removeListener('connect', up)
        // A stream let go of may still error later (a TLS layer over it
        // reports its own errors): swallow those, never crash the process.
        s.on('error', () => {})
      }
      if (opts.immediate) up()
    }

    function attempt (n, delay) {
      emitter.connected = false
      emitter.emit('reconnect', n, delay)
      const s = createConnection.apply(emitter, args)
      if (s && typeof s.on === 'function') {
        adopt(s)
      } else {
        emitter.emit('error', new Error('reconnect-core: createConnection returned no stream'))
      }
    }

    function scheduleRetry () {
      if (!emitter.reconnect) return
      if (typeof opts.failAfter === 'number' && retries >= opts.failAfter) {
        emitter.emit('fail')
        return
      }
      retries++
      const n = retries
      const delay = delays.next()
      emitter.emit('backoff', n, delay)
      cancelRetry()
      timer = setTimeout(() => {
        timer = null
        if (emitter.reconnect && !stream) attempt(n, delay)
      }, delay)
    }

    emitter.connect = emitter.listen = function (...a) {
      emitter.reconnect = true
      cancelRetry()
      if (a.length > 0) args = a
      retries = 0
      delays.reset()
      attempt(0, 0)
      return emitter
    }

    emitter.end = emitter.disconnect = function () {
      emitter.reconnect = false
      cancelRetry()
      const s = stream
      letGo()
      if (s && typeof s.end === 'function') s.end()
      emitter.connected = false
      emitter.emit('disconnect')
      return emitter
    }

    emitter.reset = function () {
      retries = 0
      delays.reset()
    }

    return emitter
  }
}
