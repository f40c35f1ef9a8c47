package jobs

import (
	"context"
	"errors"
	"strings"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/onemsg"
)

// request is the sendTemplate body for n.
func (w *SendWorker) request(ch *Channel, n *ledger.Notification) onemsg.SendTemplateRequest {
	return onemsg.SendTemplateRequest{
		Phone:                 n.Phone,
		Template:              n.Template,
		Namespace:             ch.Namespace,
		Language:              onemsg.DeterministicLanguage(n.Language),
		Params:                onemsg.BodyParams(n.Params...),
		MessageSendTTLSeconds: w.sendTTL,
	}
}

// fallBack handles Meta's "template does not exist in the translation"
// (132001) for a payload language other than the channel's default: the
// message goes in the default language instead, and the row records it.
// It returns the request to send again, or false when err is anything
// else. Nothing was sent (sent:false), so sending again is safe.
func (w *SendWorker) fallBack(ctx context.Context, ch *Channel, n *ledger.Notification, err error) (onemsg.SendTemplateRequest, bool, error) {
	var e *onemsg.Error
	if ch.Language == "" || !errors.As(err, &e) || e.Code != onemsg.CodeTemplateMissing || strings.EqualFold(n.Language, ch.Language) {
		return onemsg.SendTemplateRequest{}, false, nil
	}
	if rerr := ledger.FallBackLanguage(ctx, w.pool, n.ID, n.Language, ch.Language, e.Message); rerr != nil {
		return onemsg.SendTemplateRequest{}, false, rerr
	}
	w.logger.Info("template lacks the payload's language; sending in the channel's default", "event_id", n.EventID,
		"language", n.Language, "fallback", ch.Language)
	n.Language = ch.Language
	return w.request(ch, n), true, nil
}
