// Package sandbox is a local simulator of the 1MSG WhatsApp Business API
// (https://1msg.io) surface that cancelnotify uses: sending a Meta-approved
// template with POST /{channel}/sendTemplate and following its delivery
// through GET /{channel}/hookInfo, GET /{channel}/messages and ack pushes to
// a registered webhook.
//
// It is a test instrument. Every answer follows 1MSG and Meta as they publish
// them (docs/onemsg.md, with 1MSG's order-cancellation use case and its
// public sources), never what a particular client
// happens to send, so a client that passes against the sandbox has been
// checked against the documented contract and not against itself. Where the
// sources are silent the choice is written down next to the code that makes
// it.
//
// One such choice matters to every client: the sent report of a message is
// recorded, and its ack queued for the webhook, before the sendTemplate answer
// is written, so an ack can reach the client's webhook before the client has
// stored the id it is about.
//
// A *Server is an http.Handler. Serve it with httptest.NewServer in tests or
// with an http.Server from `cancelnotify sandbox`; the channel lives under
// /{channel}/… exactly as on api.1msg.io, so the Node.js example of 1MSG's
// use case (docs/onemsg.md) pointed at the sandbox's URL works unchanged.
//
// Besides the channel surface the sandbox records what it saw and lets a test
// inject faults, from Go (Server.Stats, Server.Messages, Server.Requests,
// Server.SetFaults) or over HTTP for a sandbox running in another process:
//
//	GET  /_sandbox/stats     Stats
//	GET  /_sandbox/messages  []Message, every accepted message
//	GET  /_sandbox/requests  []Request, every POST /sendTemplate as received
//	GET  /_sandbox/faults    Faults currently injected
//	PUT  /_sandbox/faults    replace Faults (durations as "250ms" or milliseconds)
//	POST /_sandbox/reset     forget messages, requests, stats, faults, limits
//	                         (?settings=1 also restores the initial channel settings)
//	GET  /_sandbox/calls     []Call, every other channel call (status, templates…)
//	GET  /_sandbox/account   AccountState: token revoked, channel status, templates
//	POST /_sandbox/token     {"revoked":true|false}: 401 for every call, or not
//	POST /_sandbox/channel   {"status":"disconnected"|"connected"|…}: GET /status,
//	                         and sendTemplate refused while not connected
//	POST /_sandbox/template  {"name","language"?,"status":"paused"|"approved"|…}
//
// These paths are outside any channel and need no token. Control is their
// client, as httptest keeps its Server next to the handler it serves.
//
// Message statuses (sent → delivered → read, or sent → failed) are driven by
// one scheduler goroutine and pushed by a bounded pool of workers, so
// thousands of messages per second cost heap entries, not goroutines.
package sandbox
