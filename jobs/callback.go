package jobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// QueueCallback is the queue of CRM callbacks.
const QueueCallback = "cancelnotify_callback"

// SignatureHeader carries "sha256=" + hex(HMAC-SHA256(secret, body)).
const SignatureHeader = "X-Cancelnotify-Signature"

// CallbackArgs delivers one status fact to the CRM. It is unique per
// notification and status, so the CRM gets each fact once even when the
// status is reported many times.
type CallbackArgs struct {
	NotificationID int64           `json:"notification_id" river:"unique"`
	Status         ledger.Status   `json:"status" river:"unique"`
	Body           json.RawMessage `json:"body"` // the Announcement, as of the change
}

// Kind implements river.JobArgs.
func (CallbackArgs) Kind() string { return "cancelnotify_callback" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (CallbackArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueCallback,
		MaxAttempts: callbackMaxAttempts,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: allStates},
	}
}

// A CRM outage is retried with pauses doubling to 10 minutes, for about
// two days before the job is discarded (visible in River UI, retryable).
const callbackMaxAttempts = 300

// Callbacks returns a ledger.ChangeFunc that enqueues a callback for every
// final status and every in_doubt, in the transaction that made the change.
func Callbacks(inserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}, schema string) ledger.ChangeFunc {
	return func(ctx context.Context, tx pgx.Tx, changes []ledger.Change) error {
		var params []river.InsertManyParams
		for _, c := range changes {
			if !c.To.Final() && c.To != ledger.StatusInDoubt {
				continue
			}
			body := json.RawMessage(c.AnnouncementJSON(schema))
			params = append(params, river.InsertManyParams{Args: CallbackArgs{NotificationID: c.Notification.ID, Status: c.To, Body: body}})
		}
		if len(params) == 0 {
			return nil
		}
		_, err := inserter.InsertManyTx(ctx, tx, params)
		return err
	}
}

// CallbackWorker POSTs status facts to CANCELNOTIFY_CALLBACK_URL.
type CallbackWorker struct {
	river.WorkerDefaults[CallbackArgs]

	url    string
	secret []byte
	http   *http.Client
	logger *slog.Logger
}

// NextRetry doubles from 2s to 10 minutes: a CRM that is down for an hour
// gets its facts within minutes of coming back.
func (w *CallbackWorker) NextRetry(job *river.Job[CallbackArgs]) time.Time {
	return time.Now().Add(jitter(backoff(len(job.Errors), 2*time.Second, 10*time.Minute)))
}

// Timeout bounds one delivery.
func (w *CallbackWorker) Timeout(*river.Job[CallbackArgs]) time.Duration { return 30 * time.Second }

// Sign returns the signature header value for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Work implements river.Worker.
func (w *CallbackWorker) Work(ctx context.Context, job *river.Job[CallbackArgs]) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(job.Args.Body))
	if err != nil {
		return river.JobCancel(fmt.Errorf("callback URL unusable: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cancelnotify")
	req.Header.Set(SignatureHeader, Sign(w.secret, job.Args.Body))
	req.Header.Set("X-Cancelnotify-Status", string(job.Args.Status))
	req.Header.Set("X-Cancelnotify-Delivery", strconv.FormatInt(job.ID, 10))
	resp, err := w.http.Do(req)
	if err != nil {
		return fmt.Errorf("callback not delivered: %w", scrub(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("callback answered HTTP %d; will retry", resp.StatusCode)
	}
	return nil
}

// scrub drops the URL (which may carry credentials) from a transport error.
func scrub(err error) error {
	type unwrapper interface{ Unwrap() error }
	if u, ok := err.(unwrapper); ok && u.Unwrap() != nil {
		return u.Unwrap()
	}
	return err
}
