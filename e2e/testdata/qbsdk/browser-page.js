'use strict'
/* global QB, Inbox */
// The glue browser-suite.js calls through page.evaluate: it initialises the
// SDK (the global QB of quickblox.min.js) for chatd, records what its
// listeners report in an Inbox, and turns SDK callbacks into promises of
// plain JSON values (what page.evaluate can hand back to Node).
;(function () {
  // plain copies v as JSON data; DOM nodes (a message's delay element)
  // become true.
  function plain (v) {
    if (v === undefined) return undefined
    return JSON.parse(JSON.stringify(v, (k, val) => (typeof Node !== 'undefined' && val instanceof Node) ? true : val))
  }

  // matches reports whether every key of spec (a dotted path into the
  // event) equals its value.
  function matches (ev, spec) {
    return Object.entries(spec || {}).every(([path, want]) => {
      const got = path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), ev)
      return got === want
    })
  }

  // fn resolves "chat.dialog.create" to the function and its object in QB.
  function fn (path) {
    const parts = path.split('.')
    const name = parts.pop()
    const obj = parts.reduce((o, k) => o[k], QB)
    if (typeof obj[name] !== 'function') throw new Error(`QB.${path} is not a function`)
    return [obj, obj[name]]
  }

  window.qbt = {
    // init points the SDK at chatd: the 5-argument form with a non-empty
    // account key (compat §2.1), XMPP over WebSocket with stream management.
    init (cfg, name) {
      QB.init(cfg.appId, cfg.authKey, cfg.authSecret, 'chatd-test-account-key', {
        endpoints: { api: cfg.api, chat: cfg.chat },
        chatProtocol: { active: 2, websocket: cfg.ws },
        streamManagement: { enable: true },
        debug: { mode: cfg.debug ? 1 : 0 }
      })
      window.inbox = new Inbox(name, QB.chat)
      return { version: QB.version, buildNumber: QB.buildNumber }
    },

    // call runs QB.<path>(...args, callback) and resolves with {err, res}.
    call (path, args) {
      const [obj, f] = fn(path)
      return new Promise(resolve => {
        f.call(obj, ...args, (err, res) => resolve({ err: plain(err) || null, res: plain(res) }))
      })
    },

    // callOne runs QB.<path>(...args, callback) for callbacks of one
    // argument (an error or nothing, or the result) and resolves with it.
    callOne (path, args) {
      const [obj, f] = fn(path)
      return new Promise(resolve => {
        f.call(obj, ...args, (x) => resolve({ arg: plain(x) === undefined ? null : plain(x) }))
      })
    },

    next (kind, spec, ms) {
      return window.inbox.next(kind, e => matches(e, spec), ms, JSON.stringify(spec || {})).then(plain)
    },

    all (kind, spec) {
      return plain(window.inbox.all(kind, e => matches(e, spec)))
    }
  }
})()
