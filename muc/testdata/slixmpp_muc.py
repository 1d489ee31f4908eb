#!/usr/bin/python3
"""Drives chatd's MUC service with slixmpp's XEP-0045 plugin.

Run by TestSlixmpp (muc/slixmpp_test.go), which passes one JSON argument:
host, port, room (a room JID that does not exist yet) and two users, alice
and bob, each with jid, password and id (the nick). Prints one "ok" line per
step; any failure raises and exits non-zero.
"""
import asyncio
import json
import logging
import ssl
import sys

import slixmpp
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

CFG = json.loads(sys.argv[1])
ROOM = slixmpp.JID(CFG["room"])
TIMEOUT = 10


def step(what):
    print("ok", what, flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def client(user):
    c = slixmpp.ClientXMPP(user["jid"] + "/slix", user["password"])
    for p in ("xep_0030", "xep_0004", "xep_0045", "xep_0203"):
        c.register_plugin(p)
    # The test server's certificate is self-signed.
    c.ssl_context.check_hostname = False
    c.ssl_context.verify_mode = ssl.CERT_NONE
    return c


async def online(c):
    loop = asyncio.get_running_loop()
    started = loop.create_future()

    def done(_):
        if not started.done():
            started.set_result(True)

    def failed(_):
        if not started.done():
            started.set_exception(RuntimeError("authentication failed"))

    c.add_event_handler("session_start", done)
    c.add_event_handler("failed_auth", failed)
    c.connect(address=(CFG["host"], CFG["port"]), force_starttls=True)
    await asyncio.wait_for(started, TIMEOUT)
    c.send_presence()
    await c.get_roster(timeout=TIMEOUT)


def waiter(c, event, match=lambda _: True):
    """A future set by the first event matching."""
    fut = asyncio.get_running_loop().create_future()

    def handler(st):
        if not fut.done() and match(st):
            fut.set_result(st)

    c.add_event_handler(event, handler)
    return fut


def stanza_waiter(c, path, match=lambda _: True):
    """A future set by the first stanza at path matching (slixmpp stops
    reporting a room's presences as events once it left the room)."""
    fut = asyncio.get_running_loop().create_future()

    def handler(st):
        if not fut.done() and match(st):
            fut.set_result(st)

    c.register_handler(Callback("waiter " + path, StanzaPath(path), handler))
    return fut


def stored(c, body):
    """A groupchat message kept in chat history (QuickBlox's extraParams)."""
    msg = c.make_message(mto=ROOM, mbody=body, mtype="groupchat")
    x = ET.Element("{jabber:client}extraParams")
    ET.SubElement(x, "{jabber:client}save_to_history").text = "1"
    msg.append(x)
    return msg


async def main():
    alice, bob = client(CFG["alice"]), client(CFG["bob"])
    await online(alice)
    await online(bob)
    step("both online")
    muc_a, muc_b = alice.plugin["xep_0045"], bob.plugin["xep_0045"]
    a_nick, b_nick = CFG["alice"]["id"], CFG["bob"]["id"]

    # Alice creates the room by joining it (XEP-0045 §10.1).
    pres, subject, _, _ = await muc_a.join_muc_wait(ROOM, a_nick, maxstanzas=0, timeout=TIMEOUT)
    codes = pres["muc"]["status_codes"]
    check({110, 201} <= set(codes), "self-presence codes %s" % codes)
    check(pres["muc"]["affiliation"] == "owner", "creator is %s" % pres["muc"]["affiliation"])
    step("created the room by joining (codes %s)" % sorted(codes))

    # The owner renames it through the configuration form.
    form = await muc_a.get_room_config(ROOM, timeout=TIMEOUT)
    fields = form.get_fields()
    check("muc#roomconfig_roomname" in fields, "no roomname field in %s" % list(fields))
    form.set_values({"muc#roomconfig_roomname": "Slixmpp room"})
    renamed = waiter(alice, "muc::%s::groupchat_subject" % ROOM)
    await muc_a.set_room_config(ROOM, form, timeout=TIMEOUT)
    subj = await asyncio.wait_for(renamed, TIMEOUT)
    check(subj["subject"] == "Slixmpp room", "subject after rename %r" % subj["subject"])
    step("configured: renamed to %r" % subj["subject"])

    # The room is members-only: bob is refused, then made a member.
    try:
        await muc_b.join_muc_wait(ROOM, b_nick, maxstanzas=0, timeout=TIMEOUT)
        raise AssertionError("a non-member joined")
    except slixmpp.exceptions.PresenceError as e:
        check(e.condition == "registration-required", "refusal %s" % e.condition)
    step("non-member refused (registration-required)")
    await muc_a.set_affiliation(ROOM, "member", jid=slixmpp.JID(CFG["bob"]["jid"]), timeout=TIMEOUT)
    members = await muc_a.get_affiliation_list(ROOM, "member", timeout=TIMEOUT)
    check([str(j) for j in members] == [CFG["bob"]["jid"]], "members %s" % members)
    step("bob made a member")

    bob_online = waiter(alice, "muc::%s::got_online" % ROOM)
    pres, subj, occupants, _ = await muc_b.join_muc_wait(ROOM, b_nick, maxstanzas=0, timeout=TIMEOUT)
    check(subj["subject"] == "Slixmpp room", "bob's subject %r" % subj["subject"])
    # slixmpp lists its own presence among the occupants it saw come online.
    seen = sorted(p["from"].resource for p in occupants)
    check(seen == sorted([a_nick, b_nick]), "bob saw %s" % seen)
    await asyncio.wait_for(bob_online, TIMEOUT)
    step("bob joined, saw alice, alice saw bob")

    # Messages both ways, stored in chat history.
    got_b = waiter(bob, "muc::%s::message" % ROOM, lambda m: m["body"] == "hello from alice")
    stored(alice, "hello from alice").send()
    m = await asyncio.wait_for(got_b, TIMEOUT)
    check(m["from"] == slixmpp.JID("%s/%s" % (ROOM, a_nick)), "from %s" % m["from"])
    got_a = waiter(alice, "muc::%s::message" % ROOM, lambda m: m["body"] == "hello from bob")
    stored(bob, "hello from bob").send()
    await asyncio.wait_for(got_a, TIMEOUT)
    step("messages exchanged")

    # Bob leaves; alice sees it.
    bob_gone = waiter(alice, "muc::%s::got_offline" % ROOM)
    left = stanza_waiter(bob, "presence@type=unavailable", lambda p: p["from"] == slixmpp.JID("%s/%s" % (ROOM, b_nick)))
    muc_b.leave_muc(ROOM, b_nick)
    await asyncio.wait_for(left, TIMEOUT)
    await asyncio.wait_for(bob_gone, TIMEOUT)
    step("bob left")

    # Bob comes back asking for history.
    _, _, _, history = await muc_b.join_muc_wait(ROOM, b_nick, maxstanzas=5, timeout=TIMEOUT)
    bodies = [h["body"] for h in history]
    check(bodies == ["hello from alice", "hello from bob"], "history %s" % bodies)
    step("history on join: %s" % bodies)

    # Alice takes bob's membership away: bob is kicked out with 301.
    kicked = waiter(bob, "muc::%s::presence" % ROOM,
                    lambda p: p["type"] == "unavailable" and p["from"].resource == b_nick)
    await muc_a.set_affiliation(ROOM, "none", jid=slixmpp.JID(CFG["bob"]["jid"]), timeout=TIMEOUT)
    p = await asyncio.wait_for(kicked, TIMEOUT)
    check(301 in p["muc"]["status_codes"], "kick codes %s" % p["muc"]["status_codes"])
    step("bob removed (301)")

    # Alice destroys the room, deleting its dialog.
    await muc_a.destroy(ROOM, reason="done", timeout=TIMEOUT)
    step("room destroyed")

    for c in (alice, bob):
        c.disconnect()
    step("done")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())
