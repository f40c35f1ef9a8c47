package onemsg

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// HistoryMessage is one entry of GET /messages.
type HistoryMessage struct {
	ID            string `json:"id"`
	Body          string `json:"body"`
	FromMe        bool   `json:"fromMe"`
	Time          int64  `json:"time"` // unix seconds
	ChatID        string `json:"chatId"`
	Type          string `json:"type"`
	MessageNumber int64  `json:"messageNumber,omitempty"`
}

// At returns the message time.
func (m HistoryMessage) At() time.Time { return time.Unix(m.Time, 0).UTC() }

// History is GET /messages. Notice is set, and Messages empty, when the
// channel keeps no history: then absence of a message proves nothing.
type History struct {
	Messages []HistoryMessage `json:"messages"`
	Notice   string           `json:"notice,omitempty"`
}

// MessagesQuery filters GET /messages. Zero fields are not sent.
type MessagesQuery struct {
	ChatID  string // "<digits>@c.us"
	MinTime time.Time
	MaxTime time.Time
	Limit   int
	MsgID   string
}

// ChatID returns the chat id of a phone in digits.
func ChatID(phone string) string { return phone + "@c.us" }

// Messages reads the channel's message history.
func (c *Client) Messages(ctx context.Context, q MessagesQuery) (_ *History, err error) {
	defer c.finish("messages", time.Now(), &err)
	v := url.Values{}
	if q.ChatID != "" {
		v.Set("chatId", q.ChatID)
	}
	if !q.MinTime.IsZero() {
		v.Set("min_time", strconv.FormatInt(q.MinTime.Unix(), 10))
	}
	if !q.MaxTime.IsZero() {
		v.Set("max_time", strconv.FormatInt(q.MaxTime.Unix(), 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.MsgID != "" {
		v.Set("msgId", q.MsgID)
	}
	var h History
	if err := c.do(ctx, "messages", http.MethodGet, "messages", v, nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}
