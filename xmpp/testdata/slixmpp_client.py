"""Drive chatd with slixmpp, Debian's python3-slixmpp, as a real client.

Usage: slixmpp_client.py HOST PORT MECH JID_A PASSWORD_A JID_B PASSWORD_B

Both users log in over STARTTLS (A with the SASL mechanism MECH, B with
PLAIN), fetch their rosters, go online, A subscribes to B's presence (B
approves), A sends B a message, A pings and discovers the server. The result
is printed as one JSON object; the Go test asserts on it. Exits 1 on a
timeout.
"""
import asyncio
import json
import ssl
import sys

import slixmpp

host, port, mech, jid_a, pw_a, jid_b, pw_b = sys.argv[1:8]
port = int(port)
result = {"mech": mech}


def client(jid, pw, mech):
    c = slixmpp.ClientXMPP(jid, pw, sasl_mech=mech)
    c.ssl_context.check_hostname = False
    c.ssl_context.verify_mode = ssl.CERT_NONE
    for p in ("xep_0030", "xep_0199"):
        c.register_plugin(p)
    return c


async def main():
    a = client(jid_a, pw_a, mech)
    b = client(jid_b, pw_b, "PLAIN")
    b.auto_authorize = True
    b.auto_subscribe = True
    sessions = {"a": asyncio.Event(), "b": asyncio.Event()}
    failed = []
    got_message = asyncio.Event()
    subscribed = asyncio.Event()

    def on_message(msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            result["message"] = {"body": msg["body"], "from": str(msg["from"])}
            got_message.set()

    def on_subscribed(pres):
        subscribed.set()

    a.add_event_handler("session_start", lambda _: sessions["a"].set())
    b.add_event_handler("session_start", lambda _: sessions["b"].set())
    for c in (a, b):
        c.add_event_handler("failed_auth", lambda _: failed.append(1))
    b.add_event_handler("message", on_message)
    a.add_event_handler("presence_subscribed", on_subscribed)

    a.connect((host, port))
    b.connect((host, port))
    await asyncio.wait_for(asyncio.gather(sessions["a"].wait(), sessions["b"].wait()), 20)
    result["bound_a"] = str(a.boundjid)
    for c in (a, b):
        await c.get_roster()
        c.send_presence()
    a.send_presence(pto=slixmpp.JID(jid_b).bare, ptype="subscribe")
    await asyncio.wait_for(subscribed.wait(), 20)
    # B subscribes back (auto_subscribe); A's roster pushes make it "both".
    item = a.client_roster[slixmpp.JID(jid_b).bare]
    for _ in range(400):
        if item["subscription"] == "both":
            break
        await asyncio.sleep(0.05)
    result["roster_subscription"] = item["subscription"]
    a.send_message(mto=jid_b, mbody="hello from slixmpp", mtype="chat")
    await asyncio.wait_for(got_message.wait(), 20)
    rtt = await a["xep_0199"].ping(jid=a.boundjid.domain, timeout=10)
    result["ping"] = rtt is not None
    info = await a["xep_0030"].get_info(jid=a.boundjid.domain, timeout=10)
    result["features"] = sorted(info["disco_info"]["features"])
    result["failed_auth"] = len(failed)
    for c in (a, b):
        c.disconnect()


try:
    asyncio.run(asyncio.wait_for(main(), 60))
except Exception as e:  # report what happened, for the Go test's log
    result["error"] = repr(e)
    print(json.dumps(result))
    sys.exit(1)
print(json.dumps(result))
