package muc_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"chatd/history"
	"chatd/internal/xmpptest"
	"chatd/muc"
)

// Many sessions join, talk and leave at once while the dialog's occupants
// change over REST: nothing deadlocks or races (run with -race), and once
// everyone left the service holds no room.
func TestConcurrentChurn(t *testing.T) {
	const n = 16
	e := startEnv(t, envOptions{plain: true, muc: mucConfig(8)})
	users := makeUsers(t, e, n)
	d := e.group(users[0], "churn", false, users[1:]...)
	room := e.roomJID(d)
	f := &fleet{}
	f.connect(t, e, users)

	var wg sync.WaitGroup
	for i, c := range f.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			occ := room + "/" + c.u.ID
			for j := range 6 {
				extra := "" // storage has tests of its own: store a few
				if j == 0 {
					extra = `<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams>`
				}
				c.conn.Write([]byte(sdkJoin(room, "j"+strconv.Itoa(j), c.u.ID) +
					`<message type='groupchat' to='` + room + `'><body>` + strconv.Itoa(i*100+j) + `</body>` + extra + `</message>` +
					`<iq type='get' id='i` + strconv.Itoa(j) + `' to='` + room + `'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`))
				if j%3 == 2 {
					c.conn.Write([]byte(`<presence type='unavailable' to='` + occ + `'/>`))
				}
			}
		}()
	}
	// Meanwhile the owner takes occupants out and puts them back.
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx := context.Background()
		for j := range 8 {
			u := users[1+j%(n-1)].Ref.User
			e.History.UpdateDialog(ctx, e.App.ID, users[0].Ref.User, d.ID, history.DialogUpdate{PullAll: []int64{u}})
			e.History.UpdateDialog(ctx, e.App.ID, users[0].Ref.User, d.ID, history.DialogUpdate{PushAll: []int64{u}})
		}
	}()
	wg.Wait()
	for _, c := range f.clients {
		c.conn.Write([]byte(`<presence type='unavailable' to='` + room + `/` + c.u.ID + `'/>`))
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(xmpptest.Wait)
	for e.muc.Stats() != (muc.Stats{}) {
		if time.Now().After(deadline) {
			t.Fatalf("after everyone left: %+v", e.muc.Stats())
		}
		<-tick.C
	}
}
