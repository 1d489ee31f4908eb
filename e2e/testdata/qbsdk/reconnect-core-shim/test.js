'use strict'
// Tests of the shim's contract (index.js) with real TCP sockets on loopback;
// run with node --test (e2e/qbsdk_test.go runs them).

const test = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const { EventEmitter, once } = require('node:events')
const reconnect = require('./index')

// server listens on loopback and keeps the sockets it accepts.
async function server () {
  const sockets = []
  const srv = net.createServer(s => sockets.push(s))
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  return {
    port: srv.address().port,
    sockets,
    close () {
      for (const s of sockets) s.destroy()
      srv.close()
    }
  }
}

function events (emitter, names) {
  const seen = []
  for (const n of names) emitter.on(n, (...args) => seen.push([n, ...args]))
  return seen
}

test('backoff: Fibonacci by default, exponential on request, capped', async () => {
  for (const [type, want] of [[undefined, [10, 10, 20, 30, 50, 50]], ['exponential', [10, 20, 40, 50, 50, 50]]]) {
    const e = new EventEmitter()
    const delays = []
    e.on('backoff', (n, d) => delays.push(d))
    let attempts = 0
    reconnect(() => {
      attempts++
      const s = new EventEmitter()
      s.end = () => {}
      // every attempt fails at once, so each schedules the next retry
      setImmediate(() => s.emit('error', new Error('refused')))
      return s
    })({ emitter: e, initialDelay: 10, maxDelay: 50, type, failAfter: 6 })
    const failed = once(e, 'fail')
    e.connect()
    await failed
    assert.deepEqual(delays, want, `type ${type}`)
    assert.equal(attempts, 7)
  }
})

test('connect, then listen again on a layered stream (STARTTLS): the first is let go, not ended', async () => {
  const srv = await server()
  const e = new EventEmitter()
  const seen = events(e, ['reconnect', 'connect', 'connection', 'disconnect'])
  let raw
  const inject = reconnect(opts => {
    if (opts.socket) return opts.socket
    raw = net.connect(srv.port, '127.0.0.1')
    return raw
  })
  inject({ emitter: e })
  e.listen({})
  await once(e, 'connection')
  assert.equal(e.connected, true)
  // a stream layered over raw, as node-xmpp-tls-connect's TLSSocket is
  const layered = new EventEmitter()
  layered.end = () => layered.emit('close')
  e.listen({ socket: layered })
  assert.equal(e.connected, false)
  layered.emit('connect')
  assert.equal(e.connected, true)
  assert.equal(raw.destroyed, false, 'the TCP stream under the layer was ended')
  raw.emit('close') // the layer's lower stream is no longer watched
  assert.equal(seen.filter(s => s[0] === 'disconnect').length, 0)
  assert.deepEqual(seen.map(s => s[0]), ['reconnect', 'connect', 'connection', 'reconnect', 'connect', 'connection'])
  raw.destroy()
  srv.close()
})

test('end needs no this, ends the stream, stops retries, emits disconnect once', async () => {
  const srv = await server()
  const e = new EventEmitter()
  const seen = events(e, ['disconnect', 'reconnect'])
  let sock
  reconnect(() => { sock = net.connect(srv.port, '127.0.0.1'); return sock })({ emitter: e, initialDelay: 5 })
  e.connect()
  await once(e, 'connect')
  const end = e.end
  end()
  assert.equal(e.reconnect, false)
  assert.equal(e.connected, false)
  await once(sock, 'close')
  await new Promise(resolve => setTimeout(resolve, 30))
  assert.deepEqual(seen.map(s => s[0]), ['reconnect', 'disconnect'])
  srv.close()
})

test('a lost stream is retried while reconnect is set, with the same arguments', async () => {
  const srv = await server()
  const e = new EventEmitter()
  const args = []
  reconnect((...a) => { args.push(a); return net.connect(srv.port, '127.0.0.1') })({ emitter: e, initialDelay: 5 })
  e.connect('first', 2)
  await once(e, 'connect')
  srv.sockets[0].destroy() // the server drops it
  const [err] = await once(e, 'disconnect')
  assert.ok(err === undefined || err instanceof Error)
  await once(e, 'connect')
  assert.equal(e.connected, true)
  assert.deepEqual(args, [['first', 2], ['first', 2]])
  e.reconnect = false
  srv.sockets[1].destroy()
  await once(e, 'disconnect')
  await new Promise(resolve => setTimeout(resolve, 30))
  assert.equal(args.length, 2, 'retried with reconnect cleared')
  srv.close()
})
