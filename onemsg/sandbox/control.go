package sandbox

import (
	"encoding/json"
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
	case "/_sandbox/reset":
		if verb(http.MethodPost) {
			s.Reset(truthy(r.URL.Query().Get("settings")))
			writeJSON(w, http.StatusOK, map[string]bool{"reset": true})
		}
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{
			"error": "unknown sandbox endpoint " + r.URL.Path + "; see /_sandbox/stats, messages, requests, faults, reset",
		})
	}
}
