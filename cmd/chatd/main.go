// Command chatd is the chat server: XMPP for clients, a QuickBlox-shaped REST
// API, chat history, and an embedded TURN server. With no arguments it serves;
// `chatd app …`, `chatd user …`, `chatd apikey …` and `chatd repair-history`
// are the operator's admin commands (run `chatd help`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chatd:", err)
		os.Exit(1)
	}
}
