'use strict'
// Inbox records what the QuickBlox SDK reports through its listeners
// (QB.chat.onMessageListener and the others) so that checks can wait for an
// event whether it arrived before or after they started waiting, with a
// bound. Loaded by node (require) and by the browser page (a <script>, as
// window.Inbox).
;(function (root) {
  // The SDK's listeners and the names of their arguments; each call becomes
  // an event {kind, ...args, at}.
  const LISTENERS = {
    onMessageListener: ['userId', 'message'],
    onMessageErrorListener: ['messageId', 'error'],
    onSentMessageCallback: ['messageLost', 'messageSent'],
    onMessageTypingListener: ['isTyping', 'userId', 'dialogId'],
    onDeliveredStatusListener: ['messageId', 'dialogId', 'userId'],
    onReadStatusListener: ['messageId', 'dialogId', 'userId'],
    onSystemMessageListener: ['message'],
    onKickOccupant: ['dialogId', 'initiatorUserId'],
    onJoinOccupant: ['dialogId', 'userId'],
    onLeaveOccupant: ['dialogId', 'userId'],
    onContactListListener: ['userId', 'type'],
    onSubscribeListener: ['userId'],
    onConfirmSubscribeListener: ['userId'],
    onRejectSubscribeListener: ['userId'],
    onLastUserActivityListener: ['userId', 'seconds'],
    onDisconnectedListener: [],
    onReconnectListener: []
  }

  class Inbox {
    // attach sets every listener of chat (QB.chat) to record into this
    // inbox. name labels timeouts ("bob: no onMessageListener …").
    constructor (name, chat) {
      this.name = name
      this.events = []
      this.waiters = []
      for (const [kind, argNames] of Object.entries(LISTENERS)) {
        chat[kind] = (...args) => {
          const ev = { kind, at: Date.now() }
          argNames.forEach((n, i) => { ev[n] = args[i] })
          this.events.push(ev)
          for (const w of this.waiters.slice()) w()
        }
      }
    }

    // next resolves with the first event of kind that matches pred and was
    // not taken before, waiting at most ms; it takes the event.
    next (kind, pred = () => true, ms = 5000, what = '') {
      return new Promise((resolve, reject) => {
        const find = () => {
          const ev = this.events.find(e => e.kind === kind && !e.taken && pred(e))
          if (!ev) return false
          ev.taken = true
          resolve(ev)
          return true
        }
        if (find()) return
        const waiter = () => {
          if (find()) done()
        }
        const timer = setTimeout(() => {
          done()
          const seen = this.events.filter(e => e.kind === kind && !e.taken).map(Inbox.show)
          reject(new Error(`${this.name}: no ${kind} ${what} within ${ms} ms; untaken ${kind} events: ` +
            (seen.length ? seen.join('; ') : 'none')))
        }, ms)
        const done = () => {
          clearTimeout(timer)
          this.waiters = this.waiters.filter(w => w !== waiter)
        }
        this.waiters.push(waiter)
      })
    }

    // all returns the events of kind matching pred seen so far, taken or not.
    all (kind, pred = () => true) {
      return this.events.filter(e => e.kind === kind && pred(e))
    }

    static show (ev) {
      return JSON.stringify(ev, (k, v) => (k === 'delay' && v && typeof v === 'object') ? '[delay]' : v)
    }
  }

  if (typeof module !== 'undefined' && module.exports) {
    module.exports = Inbox
  } else {
    root.Inbox = Inbox
  }
})(this)
