package sandbox

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// serveControl serves /_sandbox/…, the instruments for tests that run the
// sandbox in another process. They need no token and ignore Down.
//
//	GET  /_sandbox/stats               Stats
//	GET  /_sandbox/messages[?phone=…]  []Message
//	GET  /_sandbox/requests            []Request (body as a string of the raw bytes)
//	GET  /_sandbox/faults              Faults
//	PUT  /_sandbox/faults              Faults in, Faults out; 400 names a bad field
//	POST /_sandbox/reset[?settings=1]  {"reset":true}
//	GET  /_sandbox/calls               []Call (channel methods other than sendTemplate)
//	GET  /_sandbox/account             AccountState
//	POST /_sandbox/token               {"revoked":true|false}
//	POST /_sandbox/channel             {"status":"disconnected"|"connected"|…}
//	POST /_sandbox/template            {"name":…,"language":…(optional),"status":"paused"|"approved"|…}
//	GET  /_sandbox/channels            {"channels":[ids]}
//	POST /_sandbox/channels            ChannelConfig in: serve one more channel
//
// Each takes ?channel=ID to look at another channel than Config.Channel.
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	verb := func(want string) bool {
		if r.Method != want {
			methodNotAllowed(w, r, want)
			return false
		}
		return true
	}
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "/_sandbox/stats":
		if verb(http.MethodGet) {
			writeJSON(w, http.StatusOK, s.Stats())
		}
	case "/_sandbox/messages":
		if verb(http.MethodGet) {
			msgs := s.Messages()
			if phone := r.URL.Query().Get("phone"); phone != "" {
				kept := msgs[:0]
				for _, m := range msgs {
					if m.Phone == phone {
						kept = append(kept, m)
					}
				}
				msgs = kept
			}
			writeJSON(w, http.StatusOK, msgs)
		}
	case "/_sandbox/requests":
		if verb(http.MethodGet) {
			writeJSON(w, http.StatusOK, s.Requests())
		}
	case "/_sandbox/faults":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, s.Faults())
		case http.MethodPut:
			b, err := readBody(w, r)
			var f Faults
			if err == nil {
				err = json.Unmarshal(b, &f)
			}
			if err == nil {
				err = f.Validate()
			}
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			s.SetFaults(f)
			writeJSON(w, http.StatusOK, f)
		default:
			methodNotAllowed(w, r, http.MethodGet, http.MethodPut)
		}
	case "/_sandbox/calls":
		if verb(http.MethodGet) {
			writeJSON(w, http.StatusOK, s.Calls())
		}
	case "/_sandbox/account":
		if verb(http.MethodGet) {
			writeJSON(w, http.StatusOK, s.Account())
		}
	case "/_sandbox/token", "/_sandbox/channel", "/_sandbox/template":
		if !verb(http.MethodPost) {
			return
		}
		var in struct {
			Revoked  *bool  `json:"revoked"`
			Status   string `json:"status"`
			Name     string `json:"name"`
			Language string `json:"language"`
		}
		b, err := readBody(w, r)
		if err == nil {
			err = json.Unmarshal(b, &in)
		}
		if err == nil {
			switch strings.TrimSuffix(r.URL.Path, "/") {
			case "/_sandbox/token":
				if in.Revoked == nil {
					err = errors.New(`want {"revoked":true} or {"revoked":false}`)
				} else {
					s.setRevoked(*in.Revoked)
				}
			case "/_sandbox/channel":
				err = s.SetChannelStatus(in.Status)
			default:
				err = s.SetTemplateStatus(in.Name, in.Language, in.Status)
			}
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, s.Account())
	case "/_sandbox/reset":
		if verb(http.MethodPost) {
			s.Reset(truthy(r.URL.Query().Get("settings")))
			writeJSON(w, http.StatusOK, map[string]bool{"reset": true})
		}
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{
			"error": "unknown sandbox endpoint " + r.URL.Path + "; see /_sandbox/stats, messages, requests, calls, faults, account, token, channel, template, reset",
		})
	}
}
