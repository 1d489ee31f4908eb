"""Mobile-grade delivery with slixmpp as the client (Debian's python3-slixmpp).

Usage: slixmpp_reliability.py HOST PORT JID_A PW_A JID_B PW_B JID_C PW_C

A writes; B has two resources with carbons (B1 also with stream
management and resumption); C is offline at first. Checked: carbons to the
second resource (received and sent), offline delivery with delay stamps in
order, a block applied both ways (XEP-0191), and a stream resumed after its
TCP connection was reset with messages in flight — each message exactly
once. Prints one JSON object; exits 1 on a timeout or error.
"""
import asyncio
import json
import ssl
import sys

import slixmpp

host, port = sys.argv[1], int(sys.argv[2])
jid_a, pw_a, jid_b, pw_b, jid_c, pw_c = sys.argv[3:9]
result = {}


def client(jid, pw, plugins=()):
    c = slixmpp.ClientXMPP(jid, pw)
    c.ssl_context.check_hostname = False
    c.ssl_context.verify_mode = ssl.CERT_NONE
    for p in ("xep_0030", "xep_0199", "xep_0203") + tuple(plugins):
        c.register_plugin(p)
    return c


async def online(c):
    started = asyncio.Event()
    c.add_event_handler("session_start", lambda _: started.set())
    c.connect((host, port))
    await asyncio.wait_for(started.wait(), 20)
    await c.get_roster()
    c.send_presence()
    # A ping round trip: the presence has been handled.
    await c["xep_0199"].ping(jid=c.boundjid.domain, timeout=10)


def collect(c, event="message"):
    q = asyncio.Queue()
    c.add_event_handler(event, lambda m: q.put_nowait(m))
    return q


async def take(q, pred, timeout=20):
    while True:
        m = await asyncio.wait_for(q.get(), timeout)
        if pred(m):
            return m


async def main():
    a = client(jid_a, pw_a, ("xep_0191",))
    b1 = client(jid_b + "/one", pw_b, ("xep_0280", "xep_0198", "xep_0191"))
    b2 = client(jid_b + "/two", pw_b, ("xep_0280",))
    a_msgs, a_errors = collect(a), collect(a, "message_error")
    b1_msgs, b1_errors = collect(b1), collect(b1, "message_error")
    b2_received, b2_sent = collect(b2, "carbon_received"), collect(b2, "carbon_sent")
    sm_enabled = asyncio.Event()
    b1.add_event_handler("sm_enabled", lambda _: sm_enabled.set())
    for c in (a, b1, b2):
        await online(c)
    await asyncio.wait_for(sm_enabled.wait(), 20)
    for c in (b1, b2):
        await c["xep_0280"].enable()

    # Carbons.
    a.send_message(mto=b1.boundjid.full, mbody="to one", mtype="chat")
    m = await take(b2_received, lambda m: True)
    result["carbon_received"] = m["carbon_received"]["body"]
    b1.send_message(mto=jid_a, mbody="from one", mtype="chat")
    m = await take(b2_sent, lambda m: True)
    result["carbon_sent"] = m["carbon_sent"]["body"]

    # Offline storage: C is offline while A writes.
    for i in range(3):
        a.send_message(mto=jid_c, mbody="offline %d" % i, mtype="chat")
    await a["xep_0199"].ping(jid=a.boundjid.domain, timeout=10)
    c = client(jid_c, pw_c)
    c_msgs = collect(c)
    await online(c)
    got = []
    for i in range(3):
        m = await take(c_msgs, lambda m: m["body"].startswith("offline"))
        got.append({"body": m["body"], "delayed": m["delay"]["stamp"] is not None})
    result["offline"] = got

    # Blocking both ways.
    await a["xep_0191"].block([jid_b])
    b1.send_message(mto=jid_a, mbody="blocked?", mtype="chat")
    e = await take(b1_errors, lambda m: True)
    result["blocked_inbound"] = e["error"]["condition"]
    a.send_message(mto=jid_b, mbody="to a blocked contact", mtype="chat")
    e = await take(a_errors, lambda m: True)
    result["blocked_outbound"] = e["error"]["condition"]
    await a["xep_0191"].unblock([jid_b])

    # Stream resumption: reset B1's TCP connection with messages in flight,
    # keep writing while it is gone, reconnect and resume.
    resumed = asyncio.Event()
    b1.add_event_handler("session_resumed", lambda _: resumed.set())
    bodies = []
    b1.add_event_handler("message", lambda m: bodies.append(m["body"]) if m["body"].startswith("sm ") else None)
    for i in range(5):
        a.send_message(mto=b1.boundjid.full, mbody="sm %d" % i, mtype="chat")
    b1.transport.abort()  # a reset, not a goodbye
    for i in range(5, 10):
        a.send_message(mto=b1.boundjid.full, mbody="sm %d" % i, mtype="chat")
    await a["xep_0199"].ping(jid=a.boundjid.domain, timeout=10)
    b1.connect((host, port))
    await asyncio.wait_for(resumed.wait(), 20)
    for _ in range(400):
        if len(bodies) >= 10:
            break
        await asyncio.sleep(0.05)
    await b1["xep_0199"].ping(jid=b1.boundjid.domain, timeout=10)
    result["resumed_bodies"] = bodies
    for x in (a, b1, b2, c):
        x.disconnect()


try:
    asyncio.run(asyncio.wait_for(main(), 90))
except Exception as e:
    result["error"] = repr(e)
    print(json.dumps(result))
    sys.exit(1)
print(json.dumps(result))
