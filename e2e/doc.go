// Package e2e holds end-to-end suites that drive a whole chatd node, started
// in the test on loopback ports, with real outside clients.
//
// qbsdk_test.go runs the unmodified QuickBlox JavaScript SDK (npm quickblox
// 2.23.0) against it twice: in Node (raw TCP XMPP with STARTTLS, through
// node-xmpp-client) and in Debian's headless Chromium (XMPP over WebSocket
// through Strophe, with stream management). The JavaScript side lives in
// testdata/qbsdk with its own package.json and package-lock.json; the test
// installs it with npm ci when node_modules is missing. What each path covers
// is listed in README.md ("The QuickBlox SDK suite").
//
// The package has no code of its own outside its tests.
package e2e
