package jobs_test

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/cancelnotify/cancelnotify/jobs"
)

// A callback secret is accepted only in its Standard Webhooks form, and a
// refusal says how to make one.
func TestNewSigner(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		secret string
		ok     bool
		why    string
	}{
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=", true, ""},
		{"  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=\n", true, ""},
		{"0123456789abcdef0123456789abcdef", false, "does not start with whsec_"},
		{"whsec_not base64!", false, "not base64"},
		{"whsec_c2hvcnQ=", false, "holds 5 bytes"},
	} {
		_, err := jobs.NewSigner(c.secret)
		switch {
		case c.ok && err != nil:
			t.Errorf("NewSigner(%q) = %v", c.secret, err)
		case !c.ok && (!errors.Is(err, jobs.ErrCallbackSecret) || !strings.Contains(err.Error(), c.why) ||
			!strings.Contains(err.Error(), "head -c 32 /dev/urandom | base64")):
			t.Errorf("NewSigner(%q) = %v, want ErrCallbackSecret saying %q and how to generate one", c.secret, err, c.why)
		}
	}
}

// A CRM verifies a callback with any Standard Webhooks library.
func ExampleNewSigner() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
	signer, _ := jobs.NewSigner(secret)
	id, now, body := jobs.DeliveryID("cancelnotify", 17, "read"), time.Now(), []byte(`{"status":"read"}`)
	sig, _ := signer.Sign(id, now, body)

	h := http.Header{}
	h.Set(jobs.HeaderID, id)
	h.Set(jobs.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(jobs.HeaderSignature, sig)
	crm, _ := standardwebhooks.NewWebhook(secret)
	fmt.Println(id, crm.Verify(body, h))
	// Output: cancelnotify_17_read <nil>
}
