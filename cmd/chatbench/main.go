// Command chatbench is chatd's load generator. It drives chatd, or any XMPP
// server, over real TLS connections from a lean client built on chatd's own
// stanza parser, and measures:
//
//   - idle: N authenticated sessions held open, and the server's resident
//     memory per session (with -pid);
//   - pairs: P sender/receiver pairs exchanging 1:1 messages as fast as a
//     window of in-flight messages allows: delivered msgs/s and latency;
//   - rate: the same paced to a total rate: latency at a given load;
//   - login: connect + TLS + SASL + bind + close in a loop: logins/s;
//   - offline: a backlog of messages for an offline user, and the time from
//     its initial presence to the last message delivered.
//
// Users come from a file of "jid password" lines (-users) or are created
// through chatd's REST API (-api, -app, -key, -secret). See BENCHMARKS.md
// for the standard runs and `chatbench -h` for every flag.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted; every connection was closed")
		}
		fmt.Fprintln(os.Stderr, "chatbench:", err)
		os.Exit(1)
	}
}
