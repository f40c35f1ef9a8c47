package jobs

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/internal/tracing"
)

// QueueCallback is the queue of CRM callbacks.
const QueueCallback = "cancelnotify_callback"

// Callbacks are signed per the Standard Webhooks specification (README,
// "Outgoing callback"): webhook-id, webhook-timestamp and webhook-signature
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>", keyed with the secret's
// bytes.
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// minSecretBytes is the Standard Webhooks specification's lower bound for a
// signing key.
const minSecretBytes = 24

// ErrCallbackSecret is returned for a CANCELNOTIFY_CALLBACK_SECRET that is
// not a Standard Webhooks secret.
var ErrCallbackSecret = errors.New(`CANCELNOTIFY_CALLBACK_SECRET must be "whsec_" followed by at least 24 random bytes in base64; ` +
	`generate one with: echo "whsec_$(head -c 32 /dev/urandom | base64)"`)

// NewSigner checks secret (whsec_<base64>) and returns the signer and
// verifier it keys.
func NewSigner(secret string) (*standardwebhooks.Webhook, error) {
	key, ok := strings.CutPrefix(strings.TrimSpace(secret), "whsec_")
	if !ok {
		return nil, fmt.Errorf("%w (it does not start with whsec_)", ErrCallbackSecret)
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return nil, fmt.Errorf("%w (the part after whsec_ is not base64)", ErrCallbackSecret)
	}
	if len(raw) < minSecretBytes {
		return nil, fmt.Errorf("%w (it holds %d bytes)", ErrCallbackSecret, len(raw))
	}
	return standardwebhooks.NewWebhookRaw(raw)
}

// DeliveryID is a callback's webhook-id: one per notification and status,
// so every retry of a delivery carries the same id and the CRM can drop a
// delivery it already processed. The schema keeps two deployments calling
// one CRM apart.
func DeliveryID(schema string, notificationID int64, status ledger.Status) string {
	return schema + "_" + strconv.FormatInt(notificationID, 10) + "_" + string(status)
}

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
			p := river.InsertManyParams{Args: CallbackArgs{NotificationID: c.Notification.ID, Status: c.To, Body: body}}
			if md := tracing.Metadata(c.Notification.TraceParent); md != nil {
				p.InsertOpts = &river.InsertOpts{Metadata: md} // the delivery belongs to the notification's trace
			}
			params = append(params, p)
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
	schema string
	signer *standardwebhooks.Webhook
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

// Work implements river.Worker.
func (w *CallbackWorker) Work(ctx context.Context, job *river.Job[CallbackArgs]) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(job.Args.Body))
	if err != nil {
		return river.JobCancel(fmt.Errorf("callback URL unusable: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cancelnotify")
	// Each attempt is signed afresh: the timestamp is the attempt's, so a
	// receiver's tolerance window refuses replays of an old request.
	id, now := DeliveryID(w.schema, job.Args.NotificationID, job.Args.Status), time.Now()
	sig, err := w.signer.Sign(id, now, job.Args.Body)
	if err != nil {
		return river.JobCancel(fmt.Errorf("sign callback: %w", err))
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.Int64("cancelnotify.notification_id", job.Args.NotificationID),
			attribute.String("cancelnotify.status", string(job.Args.Status)), attribute.String("cancelnotify.webhook_id", id))
	}
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set("X-Cancelnotify-Status", string(job.Args.Status))
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
