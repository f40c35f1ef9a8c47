// Package bench measures the cancelnotify daemon against the limit of the
// Postgres it runs on (README.md, "Benchmark"): how many notifications per
// second it sends when a flash sale cancels thousands of orders at once, how
// long a single cancellation waits before its WhatsApp request leaves, and
// what every message costs the OMS's database in commits and WAL.
//
// The daemon is measured as users run it: `cancelnotify run` in its own
// process, configured by environment variables, against the 1MSG sandbox
// (`cancelnotify sandbox`, another process) answering with an internet-like
// latency and pushing sent → delivered → read to the daemon's webhook. The
// bench itself plays the OMS: concurrent connections, one row per
// transaction, into the outbox of a throwaway schema.
//
// One run has these phases, each reported with the machine it ran on:
//
//   - ceiling: the single-row INSERT … COMMIT rate Postgres sustains from
//     concurrent connections into a copy of the outbox (no daemon running);
//   - baseline: the burst's rows inserted with no daemon running, for the
//     writers' own WAL and commit rate, which the cost figures take out;
//   - idle: what the daemon costs Postgres per second with nothing to do;
//   - paced: a steady rate (Meta's default 80/s) for the latency from the
//     OMS's COMMIT to the sendTemplate request and to the recorded wamid;
//   - burst: N cancellations committed as fast as the writers can, for the
//     notifications per second and the commits, WAL and hookInfo calls per
//     notification over each message's whole life.
//
// Pure arithmetic (percentiles, cost, targets, the table and JSON) is kept
// apart from the processes and queries so it can be unit-tested.
package bench
