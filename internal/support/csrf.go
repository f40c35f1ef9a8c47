package support

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// csrf makes and checks the tokens of the action forms: an HMAC, under a
// key made at start, of the user, the event and the time the form was
// made. Another site can make the browser POST with its basic auth but
// cannot know the token; a restart invalidates open forms.
type csrf struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

func newCSRF() (*csrf, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("support page: CSRF key: %w", err)
	}
	return &csrf{key: key, ttl: 2 * time.Hour, now: time.Now}, nil
}

func (c *csrf) sign(user, eventID, at string) string {
	m := hmac.New(sha256.New, c.key)
	fmt.Fprintf(m, "%d:%s|%d:%s|%s", len(user), user, len(eventID), eventID, at)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (c *csrf) token(user, eventID string) string {
	at := strconv.FormatInt(c.now().Unix(), 10)
	return at + "." + c.sign(user, eventID, at)
}

func (c *csrf) valid(token, user, eventID string) bool {
	at, mac, ok := strings.Cut(token, ".")
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(at, 10, 64)
	if err != nil || c.now().Sub(time.Unix(sec, 0)) > c.ttl || time.Unix(sec, 0).After(c.now().Add(time.Minute)) {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(c.sign(user, eventID, at)))
}
