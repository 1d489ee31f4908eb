'use strict'
// The browser path: the unmodified QuickBlox SDK's browser bundle
// (quickblox.min.js) in Debian's headless Chromium, driven by playwright-core,
// against the chatd node the Go test started (e2e/qbsdk_test.go). REST goes
// through the browser's fetch (so CORS is exercised), chat through Strophe
// over WebSocket with stream management on — the paths that exist only in a
// browser: stream management acks and the sent-message callback, carbons,
// the SDK's pings every 5 s, and its reconnection when the connection drops.
//
// Each user is a tab of its own with its own QB (alice has two: carbons need
// a second resource). The checks run here and call into the tabs with
// page.evaluate; browser-page.js is the glue on the page's side.

const assert = require('node:assert/strict')
const { chromium } = require('playwright-core')
const { env, Suite, within, OBJECT_ID } = require('./lib')

const E = env()
const suite = new Suite('browser path', E.deadlineMs)
const check = suite.check.bind(suite)
const sorted = ids => [...ids].sort((a, b) => a - b)
const roomJid = dialogId => `${E.appId}_${dialogId}@muc.${E.chat}`

// The flags the suite runs Chromium with; the profile is a fresh directory
// the Go test removes.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--ignore-certificate-errors'
]

// Tab is one page with one QB, seen from Node.
class Tab {
  constructor (name, page) {
    this.name = name
    this.page = page
    this.sockets = [] // every WebSocket the page opened, with its frames
    page.on('websocket', ws => {
      const rec = { url: ws.url(), sent: [], received: [], closed: false }
      this.sockets.push(rec)
      ws.on('framesent', f => rec.sent.push({ at: Date.now(), data: String(f.payload) }))
      ws.on('framereceived', f => rec.received.push({ at: Date.now(), data: String(f.payload) }))
      ws.on('close', () => { rec.closed = true })
    })
    page.on('pageerror', err => console.log(`[${name}] page error: ${err.message}`))
    page.on('console', msg => {
      if (msg.type() === 'error' || E.debug) console.log(`[${name}] console.${msg.type()}: ${msg.text()}`)
    })
  }

  eval (fn, arg) {
    return this.page.evaluate(fn, arg)
  }

  // call runs QB.<path>(...args, cb) in the page and returns the result; an
  // error rejects.
  async call (path, ...args) {
    const r = await within(10000, `${this.name}: QB.${path}`, this.page.evaluate(([p, a]) => window.qbt.call(p, a), [path, args]))
    if (r.err) throw new Error(`${this.name}: QB.${path} reported an error: ${JSON.stringify(r.err)}`)
    return r.res
  }

  async fails (path, ...args) {
    const r = await within(10000, `${this.name}: QB.${path}`, this.page.evaluate(([p, a]) => window.qbt.call(p, a), [path, args]))
    if (!r.err) throw new Error(`${this.name}: QB.${path} should have failed, got ${JSON.stringify(r.res)}`)
    return r.err
  }

  // callOne is call for callbacks of one argument; it returns that argument.
  async callOne (path, ...args) {
    const r = await within(10000, `${this.name}: QB.${path}`, this.page.evaluate(([p, a]) => window.qbt.callOne(p, a), [path, args]))
    return r.arg
  }

  // next waits in the page for a listener event whose fields equal spec.
  next (kind, spec = {}, ms = 5000) {
    return this.page.evaluate(([k, s, m]) => window.qbt.next(k, s, m), [kind, spec, ms])
  }

  all (kind, spec = {}) {
    return this.page.evaluate(([k, s]) => window.qbt.all(k, s), [kind, spec])
  }

  // pings are the SDK's own pings to the server seen on the wire, each with
  // when it was sent and when its answer came.
  pings () {
    const out = []
    for (const s of this.sockets) {
      for (const f of s.sent) {
        const iq = startTag(f.data, 'iq')
        if (!iq || iq.type !== 'get' || iq.to !== E.chat || !/:ping$/.test(iq.id || '') || !/urn:xmpp:ping/.test(f.data)) continue
        const answer = s.received.find(r => {
          const a = startTag(r.data, 'iq')
          return a && a.id === iq.id && (a.type === 'result' || a.type === 'error')
        })
        out.push({ id: iq.id, at: f.at, answeredIn: answer ? answer.at - f.at : null, type: answer && startTag(answer.data, 'iq').type })
      }
    }
    return out
  }
}

// startTag returns the attributes of data's first element when it is name.
function startTag (data, name) {
  const m = new RegExp(`^\\s*<${name}\\b([^>]*)>`).exec(data)
  if (!m) return null
  const attrs = {}
  for (const a of m[1].matchAll(/([\w:-]+)\s*=\s*(?:'([^']*)'|"([^"]*)")/g)) attrs[a[1]] = a[2] !== undefined ? a[2] : a[3]
  return attrs
}

let context
const tabs = {}
const users = {}
const state = {}

async function openTab (name) {
  const page = await context.newPage()
  const tab = new Tab(name, page)
  await page.goto(E.pageURL, { waitUntil: 'load' })
  const v = await tab.eval(([cfg, n]) => window.qbt.init(cfg, n), [{
    appId: E.appId, authKey: E.authKey, authSecret: E.authSecret, api: E.api, chat: E.chat, ws: E.wsURL, debug: E.debug
  }, name])
  tabs[name] = tab
  return v
}

check('Chromium opens the page with the SDK bundle in four tabs', async () => {
  context = await chromium.launchPersistentContext(process.env.QB_PROFILE_DIR, {
    executablePath: E.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
    ignoreHTTPSErrors: true,
    timeout: 30000
  })
  for (const name of ['alice', 'alice2', 'bob', 'carol']) {
    const v = await openTab(name)
    assert.equal(v.version, '2.23.0')
    assert.equal(typeof v.buildNumber, 'string')
  }
}, 60000)

check('REST from the browser (fetch, CORS): app session, users, user sessions, QB-Token-ExpirationDate read', async () => {
  const s = await tabs.alice.call('createSession')
  assert.equal(s.application_id, E.appId)
  assert.equal(s.user_id, 0)
  for (const login of ['alice', 'bob', 'carol']) {
    const u = await tabs.alice.call('users.create', { login, password: login + '-pass-1', full_name: login })
    assert.equal(u.login, login)
    assert.ok(u.id > 0)
    users[login] = { id: u.id, login, password: login + '-pass-1' }
  }
  for (const [name, login] of [['alice', 'alice'], ['alice2', 'alice'], ['bob', 'bob'], ['carol', 'carol']]) {
    const sess = await tabs[name].call('createSession', { login, password: users[login].password })
    assert.equal(sess.user_id, users[login].id)
    tabs[name].token = sess.token
    tabs[name].user = users[login]
  }
  // The SDK reads the session's expiry from a response header, which a
  // browser shows it only when CORS exposes it.
  const expiry = await tabs.bob.eval(() => {
    const d = QB.service.qbInst.config.qbTokenExpirationDate
    return d instanceof Date ? d.getTime() : null
  })
  assert.ok(expiry > Date.now() + 60 * 60 * 1000, `token expiry ${expiry && new Date(expiry).toISOString()}`)
  const d = await tabs.alice.call('chat.dialog.create', { type: 3, occupants_ids: [users.bob.id] })
  assert.match(d._id, OBJECT_ID)
  assert.deepEqual(d.occupants_ids, sorted([users.alice.id, users.bob.id]))
  state.private = d
})

check('chat.connect over WebSocket (Strophe) with the session token; stream management enabled', async () => {
  for (const name of ['alice', 'alice2', 'bob', 'carol']) {
    const tab = tabs[name]
    const roster = await tab.call('chat.connect', { userId: tab.user.id, password: tab.token })
    assert.deepEqual(roster, {})
    const st = await tab.eval(() => ({
      connected: QB.chat.isConnected,
      jid: QB.chat.connection.jid,
      sm: !!(QB.chat.streamManagement && QB.chat.streamManagement._isStreamManagementEnabled)
    }))
    assert.equal(st.connected, true)
    assert.match(st.jid, new RegExp(`^${tab.user.id}-${E.appId}@${E.chat}/.+`))
    tab.connectedAt = Date.now()
    assert.equal(tab.sockets.length, 1)
    assert.equal(tab.sockets[0].url, E.wsURL)
    // <enabled/> may follow the connect callback by a round trip
    for (let i = 0; i < 50 && !st.sm; i++) {
      await new Promise(r => setTimeout(r, 20))
      st.sm = await tab.eval(() => QB.chat.streamManagement._isStreamManagementEnabled)
    }
    assert.equal(st.sm, true, `${name}: no <enabled/>`)
    assert.ok(tab.sockets[0].received.some(f => /<enabled\b[^>]*urn:xmpp:sm:3/.test(f.data)), 'no <enabled/> on the wire')
  }
})

const ATTACHMENT = { id: '42', uid: 'aabbccdd', type: 'image', name: 'a.png', size: 1024, url: 'https://files.example.org/a.png' }

check('1:1 message: the sent callback fires on the server\'s ack; the DOM parser reads extension and attachments', async () => {
  const d = state.private
  const id = await tabs.alice.eval(([to, dialogId, att]) => QB.chat.send(to, {
    type: 'chat', body: 'hello from the browser', markable: 1,
    extension: { save_to_history: 1, dialog_id: dialogId, custom: 'b1', attachments: [att] }
  }), [users.bob.id, d._id, ATTACHMENT])
  assert.match(id, OBJECT_ID)
  const sent = await tabs.alice.next('onSentMessageCallback', { 'messageSent.id': id })
  assert.equal(sent.messageLost, null)
  assert.equal(sent.messageSent.body, 'hello from the browser')
  const ev = await tabs.bob.next('onMessageListener', { 'message.id': id })
  assert.equal(ev.userId, users.alice.id)
  const m = ev.message
  assert.equal(m.type, 'chat')
  assert.equal(m.body, 'hello from the browser')
  assert.equal(m.dialog_id, d._id)
  assert.equal(m.markable, 1)
  assert.equal(m.extension.save_to_history, '1')
  assert.equal(m.extension.custom, 'b1')
  assert.equal(m.extension.message_id, id)
  assert.ok(Math.abs(Number(m.extension.date_sent) - Date.now() / 1000) < 60)
  assert.deepEqual(m.extension.attachments, [ATTACHMENT])
  // the wire: alice asked for an ack after the message and got <a h=…/>
  const w = tabs.alice.sockets[0]
  assert.ok(w.sent.some(f => /^<r\b[^>]*urn:xmpp:sm:3/.test(f.data)), 'no <r/> sent')
  assert.ok(w.received.some(f => /^<a\b[^>]*\bh=/.test(f.data)), 'no <a h=…/> received')
  state.msg1 = id
})

check('carbons: alice\'s other tab gets her sent message (recipient_id) and bob\'s answer', async () => {
  const id = state.msg1
  const carbon = await tabs.alice2.next('onMessageListener', { 'message.id': id })
  assert.equal(carbon.userId, users.alice.id)
  assert.equal(carbon.message.recipient_id, users.bob.id)
  assert.equal(carbon.message.body, 'hello from the browser')
  assert.equal(carbon.message.dialog_id, state.private._id)
  const answer = await tabs.bob.eval(([to, dialogId]) => QB.chat.send(to, {
    type: 'chat', body: 'hi alice', extension: { save_to_history: 1, dialog_id: dialogId }
  }), [users.alice.id, state.private._id])
  for (const name of ['alice', 'alice2']) {
    const ev = await tabs[name].next('onMessageListener', { 'message.id': answer })
    assert.equal(ev.userId, users.bob.id, name)
    assert.equal(ev.message.body, 'hi alice', name)
  }
  const sent = await tabs.bob.next('onSentMessageCallback', { 'messageSent.id': answer })
  assert.equal(sent.messageLost, null)
})

check('markers and typing in the browser', async () => {
  const d = state.private
  const id = state.msg1
  const delivered = await tabs.alice.next('onDeliveredStatusListener', { messageId: id, userId: users.bob.id })
  assert.equal(delivered.dialogId, d._id)
  await tabs.bob.eval(([messageId, userId, dialogId]) => QB.chat.sendReadStatus({ messageId, userId, dialogId }), [id, users.alice.id, d._id])
  const read = await tabs.alice.next('onReadStatusListener', { messageId: id, userId: users.bob.id })
  assert.equal(read.dialogId, d._id)
  const list = await tabs.alice.call('chat.message.list', { chat_dialog_id: d._id, _id: id, mark_as_read: 0 })
  assert.deepEqual(list.items[0].delivered_ids, sorted([users.alice.id, users.bob.id]))
  assert.deepEqual(list.items[0].read_ids, sorted([users.alice.id, users.bob.id]))
  await tabs.bob.eval(to => QB.chat.sendIsTypingStatus(to), users.alice.id)
  let ev = await tabs.alice.next('onMessageTypingListener', { userId: users.bob.id })
  assert.equal(ev.isTyping, true)
  await tabs.bob.eval(to => QB.chat.sendIsStopTypingStatus(to), users.alice.id)
  ev = await tabs.alice.next('onMessageTypingListener', { userId: users.bob.id })
  assert.equal(ev.isTyping, false)
})

check('system notification and privacy list in the browser', async () => {
  const id = await tabs.bob.eval(to => QB.chat.sendSystemMessage(to, { body: 'sys', extension: { k: 'v' } }), users.carol.id)
  const sys = await tabs.carol.next('onSystemMessageListener', { 'message.id': id })
  assert.equal(sys.message.userId, users.bob.id)
  assert.equal(sys.message.body, 'sys')
  assert.deepEqual(sys.message.extension, { k: 'v' })
  assert.equal(await tabs.carol.callOne('chat.privacylist.create', { name: 'quiet', items: [{ user_id: users.bob.id, action: 'deny' }] }), null)
  assert.equal(await tabs.carol.callOne('chat.privacylist.setAsDefault', 'quiet'), null)
  const list = await tabs.carol.call('chat.privacylist.getList', 'quiet')
  assert.deepEqual(list, { name: 'quiet', items: [{ user_id: users.bob.id, action: 'deny' }] })
  const names = await tabs.carol.call('chat.privacylist.getNames')
  assert.deepEqual(names, { default: 'quiet', active: 'quiet', names: ['quiet'] })
  const blocked = await tabs.bob.eval(to => QB.chat.send(to, { type: 'chat', body: 'psst' }), users.carol.id)
  const err = await tabs.bob.next('onMessageErrorListener', { messageId: blocked })
  assert.equal(err.error.code, 503)
  assert.equal(await tabs.carol.callOne('chat.privacylist.setAsDefault', null), null)
  assert.equal(await tabs.carol.callOne('chat.privacylist.delete', 'quiet'), null)
  const after = await tabs.carol.call('chat.privacylist.getNames')
  assert.deepEqual(after, { default: null, active: null, names: [] })
})

check('group chat: join with its callback, listOnlineUsers, a message acked and fanned out, leave with its callback', async () => {
  const g = await tabs.alice.call('chat.dialog.create', { type: 2, name: 'Browser team', occupants_ids: [users.bob.id, users.carol.id] })
  const room = roomJid(g._id)
  assert.equal(g.xmpp_room_jid, room)
  state.group = g
  for (const name of ['alice', 'bob', 'carol']) {
    const res = await tabs[name].call('chat.muc.join', g._id)
    assert.deepEqual(res, { dialogId: g._id }, name)
  }
  const j = await tabs.alice.next('onJoinOccupant', { userId: users.bob.id })
  assert.equal(j.dialogId, g._id)
  const online = await tabs.alice.callOne('chat.muc.listOnlineUsers', room)
  assert.deepEqual(sorted(online), sorted([users.alice.id, users.bob.id, users.carol.id]))

  const id = await tabs.alice.eval(([to, dialogId]) => QB.chat.send(to, {
    type: 'groupchat', body: 'hello browser team', markable: 1, extension: { save_to_history: 1, dialog_id: dialogId, custom: 'bg' }
  }), [room, g._id])
  const sent = await tabs.alice.next('onSentMessageCallback', { 'messageSent.id': id })
  assert.equal(sent.messageLost, null)
  // bob and carol joined; alice2 did not, and gets it at her bare JID
  // (is_join_required is 0); alice gets her own back
  for (const name of ['bob', 'carol', 'alice2', 'alice']) {
    const ev = await tabs[name].next('onMessageListener', { 'message.id': id })
    assert.equal(ev.userId, users.alice.id, name)
    assert.equal(ev.message.type, 'groupchat', name)
    assert.equal(ev.message.dialog_id, g._id, name)
    assert.equal(ev.message.body, 'hello browser team', name)
    assert.equal(ev.message.extension.custom, 'bg', name)
    assert.equal(ev.message.extension.message_id, id, name)
  }
  const d = await tabs.alice.next('onDeliveredStatusListener', { messageId: id, userId: users.bob.id })
  assert.equal(d.dialogId, g._id)

  const left = await tabs.bob.call('chat.muc.leave', room)
  assert.deepEqual(left, { dialogId: g._id })
  const l = await tabs.alice.next('onLeaveOccupant', { userId: users.bob.id })
  assert.equal(l.dialogId, g._id)
})

check('reconnect: the connection drops, every tab reconnects by itself, chat and acks work again', async () => {
  const before = {}
  for (const name of Object.keys(tabs)) before[name] = tabs[name].sockets.length
  const dropped = await tabs.alice.eval(() => fetch('/drop', { method: 'POST' }).then(r => r.json()))
  assert.equal(dropped.dropped, 4)
  for (const name of Object.keys(tabs)) {
    await tabs[name].next('onDisconnectedListener', {}, 10000)
    await tabs[name].next('onReconnectListener', {}, 15000)
    const st = await tabs[name].eval(() => ({ connected: QB.chat.isConnected, sm: QB.chat.streamManagement._isStreamManagementEnabled }))
    assert.deepEqual(st, { connected: true, sm: true }, name)
    // Usually one new WebSocket. The SDK's 5 s ping timer keeps running
    // while it reconnects, and a ping it sends during SASL on the new
    // stream is a stanza before authentication, which chatd answers with a
    // <not-authorized/> stream error and a close (RFC 6120 §4.9.3.12: the
    // server MUST close the stream); the SDK then retries 3 s later. Rare
    // by timing (this check runs between ping ticks); say so when it
    // happens.
    const fresh = tabs[name].sockets.slice(before[name])
    assert.ok(fresh.length >= 1, `${name}: no new WebSocket`)
    for (const sk of fresh.slice(0, -1)) {
      const why = sk.received.map(f => f.data).find(d => /^<error\b/.test(d)) || 'no stream error'
      console.log(`note: ${name} needed another attempt; the earlier one ended with ${why.slice(0, 200)}`)
    }
  }
  const id = await tabs.bob.eval(([to, dialogId]) => QB.chat.send(to, {
    type: 'chat', body: 'after the drop', extension: { save_to_history: 1, dialog_id: dialogId }
  }), [users.alice.id, state.private._id])
  const ev = await tabs.alice.next('onMessageListener', { 'message.id': id }, 10000)
  assert.equal(ev.message.body, 'after the drop')
  const sent = await tabs.bob.next('onSentMessageCallback', { 'messageSent.id': id }, 10000)
  assert.equal(sent.messageLost, null)
  const list = await tabs.alice.call('chat.message.list', { chat_dialog_id: state.private._id, _id: id, mark_as_read: 0 })
  assert.equal(list.items.length, 1)
}, 45000)

check('pings: the SDK pings chatd every 5 s and every answer comes in under 1 s', async () => {
  // The SDK's ping timer starts at the first connect and keeps running
  // through reconnects; two pings take up to ~10 s from then.
  const tab = tabs.alice
  let pings = tab.pings()
  for (let i = 0; i < 150 && pings.filter(p => p.answeredIn !== null).length < 2; i++) {
    await new Promise(r => setTimeout(r, 100))
    pings = tab.pings()
  }
  const answered = pings.filter(p => p.answeredIn !== null)
  assert.ok(answered.length >= 2, `pings seen: ${JSON.stringify(pings)}`)
  for (const p of answered) {
    assert.equal(p.type, 'result')
    assert.ok(p.answeredIn < 1000, `ping ${p.id} answered in ${p.answeredIn} ms`)
  }
  const gaps = answered.slice(1).map((p, i) => p.at - answered[i].at)
  assert.ok(gaps.some(g => g > 4000 && g < 7000), `pings ${gaps.join(', ')} ms apart`)
  assert.equal(await tab.eval(() => QB.chat._chatPingFailedCounter), 0)
}, 30000)

check('after the reconnect the SDK rejoined its rooms; a kick over REST (status 301) reaches the kicked tab', async () => {
  const g = state.group
  const room = roomJid(g._id)
  let online = []
  for (let i = 0; i < 50; i++) { // the rejoins follow the reconnect by a round trip: poll, bounded
    online = await tabs.alice.callOne('chat.muc.listOnlineUsers', room)
    if (online.length === 2) break
    await new Promise(r => setTimeout(r, 50))
  }
  assert.deepEqual(sorted(online), sorted([users.alice.id, users.carol.id]))
  const u = await tabs.alice.call('chat.dialog.update', g._id, { pull_all: { occupants_ids: [users.carol.id] } })
  assert.deepEqual(u.occupants_ids, sorted([users.alice.id, users.bob.id]))
  const kick = await tabs.carol.next('onKickOccupant', { dialogId: g._id })
  assert.equal(kick.initiatorUserId, users.alice.id)
  const l = await tabs.alice.next('onLeaveOccupant', { userId: users.carol.id })
  assert.equal(l.dialogId, g._id)
  assert.equal(await tabs.carol.eval(r => QB.chat.muc.joinedRooms[r], room), undefined)
})

check('chat.disconnect closes the WebSocket', async () => {
  for (const name of Object.keys(tabs)) {
    await tabs[name].eval(() => QB.chat.disconnect())
    await tabs[name].next('onDisconnectedListener', {}, 5000)
    assert.equal(await tabs[name].eval(() => QB.chat.isConnected), false)
  }
})

suite.run(async () => {
  if (context) await context.close()
})
