// Package channels reads the channels file (CANCELNOTIFY_CHANNELS_FILE): the
// 1MSG channels a daemon sends through besides the one the ONEMSG_*
// variables define, which is named "default".
//
// A file looks like this (README.md, "Several channels"):
//
//	channels:
//	  - name: brand-b              # what a payload's "channel" key says
//	    channel_id: ODI371267301
//	    token_file: /etc/cancelnotify/brand-b.token   # or the systemd credential onemsg-token-brand-b
//	    template: order_cancelled
//	    namespace: abc_ns
//	    language: en
//	    rate: 80                   # messages/s for this channel, all instances together
//
// Parse checks the whole file and reports every problem at once, each
// naming the entry and the field, like the rest of the configuration.
package channels

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
	"github.com/cancelnotify/cancelnotify/outbox"
)

// Default names the channel of the ONEMSG_* variables.
const Default = ledger.DefaultChannel

// DefaultRate is a channel's rate when the file gives none: Meta's default
// throughput per business number, messages per second.
const DefaultRate = 80

// Spec is one entry of the file. Optional fields are nil or "" when the
// file leaves them out; the caller fills them from the default channel.
type Spec struct {
	Name      string
	ChannelID string
	// TokenFile holds the channel's 1MSG token; without it the token is
	// read from the systemd credential CredentialName(Name).
	TokenFile string
	Template  string
	Namespace string
	Language  string // default: ONEMSG_LANGUAGE
	// Rate is the channel's sends per second for all daemons on the schema
	// together; default DefaultRate; 0 = unlimited.
	Rate *float64
	// PairInterval is the least gap between two messages to one phone
	// through this channel; default CANCELNOTIFY_PAIR_INTERVAL.
	PairInterval *time.Duration
	// APIURL is 1MSG's base URL for this channel; default ONEMSG_API_URL.
	APIURL string
	// PhoneRegion reads this channel's phones written without a country
	// code (ISO 3166, e.g. DE); default CANCELNOTIFY_PHONE_REGION.
	PhoneRegion string
}

// spec is Spec as written in YAML: the durations as text.
type spec struct {
	Name         string   `yaml:"name"`
	ChannelID    string   `yaml:"channel_id"`
	TokenFile    string   `yaml:"token_file"`
	Template     string   `yaml:"template"`
	Namespace    string   `yaml:"namespace"`
	Language     string   `yaml:"language"`
	Rate         *float64 `yaml:"rate"`
	PairInterval *string  `yaml:"pair_interval"`
	APIURL       string   `yaml:"api_url"`
	PhoneRegion  string   `yaml:"phone_region"`
}

type file struct {
	Channels []spec `yaml:"channels"`
}

// CredentialName is the systemd credential that holds a channel's token
// when the file gives no token_file.
func CredentialName(name string) string { return "onemsg-token-" + name }

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	languageRE = regexp.MustCompile(`^[a-z]{2,3}(_[A-Z]{2})?$`)
)

// Parse reads a channels file. It returns the entries in file order and
// every problem found, each a sentence that names the entry, the field and
// what to write; the entries are only usable when there are no problems.
func Parse(r io.Reader) ([]Spec, []string) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, []string{fmt.Sprintf("cannot be read: %v", err)}
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			probs := make([]string, len(te.Errors))
			for i, e := range te.Errors {
				probs[i] = typeProblem(e)
			}
			return nil, probs
		}
		return nil, []string{fmt.Sprintf("is not valid YAML (%v): write it as in README.md, \"Several channels\"", strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	if len(f.Channels) == 0 {
		return nil, []string{`lists no channels: write "channels:" followed by one "- name: …" entry per channel, or unset CANCELNOTIFY_CHANNELS_FILE`}
	}
	var probs []string
	fail := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	seenName := map[string]int{}
	seenID := map[string]int{}
	out := make([]Spec, len(f.Channels))
	for i, c := range f.Channels {
		at := fmt.Sprintf("channels[%d]", i)
		if c.Name != "" {
			at = fmt.Sprintf("channels[%d] (%s)", i, c.Name)
		}
		s := Spec{Name: strings.TrimSpace(c.Name), ChannelID: strings.TrimSpace(c.ChannelID), TokenFile: strings.TrimSpace(c.TokenFile),
			Template: strings.TrimSpace(c.Template), Namespace: strings.TrimSpace(c.Namespace), Language: strings.TrimSpace(c.Language),
			Rate: c.Rate, APIURL: strings.TrimSpace(c.APIURL), PhoneRegion: strings.TrimSpace(c.PhoneRegion)}
		switch {
		case s.Name == "":
			fail("%s: name is missing: give each channel the name a payload's \"channel\" key will use, e.g. name: brand-b", at)
		case s.Name == Default:
			fail("%s: the name %q is taken by the channel of the ONEMSG_* variables: choose another name", at, Default)
		case !nameRE.MatchString(s.Name):
			fail("%s: name %q is not usable: use 1-63 lowercase letters, digits, - and _, starting with a letter or digit", at, s.Name)
		default:
			if j, dup := seenName[s.Name]; dup {
				fail("%s: name %q is also the name of channels[%d]: each channel needs its own name", at, s.Name, j)
			}
			seenName[s.Name] = i
		}
		switch {
		case s.ChannelID == "":
			fail("%s: channel_id is missing: copy the channel (instance) id from the 1MSG dashboard, e.g. channel_id: ODI371267301", at)
		case strings.ContainsAny(s.ChannelID, "/?# "):
			fail("%s: channel_id %q is not a 1MSG channel id: copy it from the 1MSG dashboard, e.g. ODI371267301", at, s.ChannelID)
		default:
			if j, dup := seenID[s.ChannelID]; dup {
				fail("%s: channel_id %s is also the channel_id of channels[%d]: one 1MSG channel can have only one entry", at, s.ChannelID, j)
			}
			seenID[s.ChannelID] = i
		}
		if s.Template == "" {
			fail("%s: template is missing: name the channel's approved template, e.g. template: order_cancelled", at)
		}
		if s.Namespace == "" {
			fail("%s: namespace is missing: copy the template's namespace from the channel's GET /templates (1MSG answers 422 without it)", at)
		}
		if s.Language != "" && !languageRE.MatchString(s.Language) {
			fail("%s: language %q is not a template language code: write e.g. en, ru or pt_BR, or leave it out for ONEMSG_LANGUAGE", at, s.Language)
		}
		if s.Rate != nil && (*s.Rate < 0 || *s.Rate > 100000) {
			fail("%s: rate %g is not a number from 0 to 100000: write the channel's messages per second for all instances together (Meta's default: 80), 0 for unlimited", at, *s.Rate)
		}
		if c.PairInterval != nil {
			d, err := time.ParseDuration(strings.TrimSpace(*c.PairInterval))
			if err != nil || d < 0 {
				fail("%s: pair_interval %q is not a duration: write it like 6s, or 0s for off", at, *c.PairInterval)
			} else {
				s.PairInterval = &d
			}
		}
		if err := outbox.CheckPhoneRegion(s.PhoneRegion); err != nil {
			fail("%s: phone_region: %v; or leave it out for CANCELNOTIFY_PHONE_REGION", at, err)
		}
		if s.APIURL != "" && !strings.HasPrefix(s.APIURL, "http://") && !strings.HasPrefix(s.APIURL, "https://") {
			fail("%s: api_url %q is not an http(s) URL: write it like https://api.1msg.io, or leave it out for ONEMSG_API_URL", at, s.APIURL)
		}
		out[i] = s
	}
	return out, probs
}

var unknownFieldRE = regexp.MustCompile(`^(line \d+): field (.*) not found in type channels\.(spec|file)$`)

// typeProblem turns one of the YAML decoder's type errors into a sentence
// that says what to write.
func typeProblem(e string) string {
	e = strings.TrimPrefix(e, "yaml: ")
	if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
		if m[3] == "file" {
			return fmt.Sprintf("%s: unknown key %q: the file has one key, channels", m[1], m[2])
		}
		return fmt.Sprintf("%s: unknown field %q: the known fields are name, channel_id, token_file, template, namespace, language, rate, pair_interval and api_url", m[1], m[2])
	}
	return e + `: write it as in README.md, "Several channels"`
}
