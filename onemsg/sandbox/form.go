package sandbox

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// parseForm decodes an application/x-www-form-urlencoded body into the same
// shape as a JSON object, so one validator serves both encodings. Nested
// fields use the bracket notation PHP, Rails and Node's qs produce
// (language[code]=en, params[0][parameters][1][text]=…); a top-level field
// may also carry JSON text (params=[{"type":"body",…}]).
func parseForm(body string) (map[string]json.RawMessage, error) {
	vals, err := url.ParseQuery(body)
	if err != nil {
		return nil, fmt.Errorf("request body is not a valid form: %v", err)
	}
	root := map[string]any{}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	// Sorted so that "a[]" appends happen in a stable order.
	slices.Sort(keys)
	for _, k := range keys {
		path, err := formPath(k)
		if err != nil {
			return nil, err
		}
		appendAll := path[len(path)-1] == ""
		for i, v := range vals[k] {
			if i > 0 && !appendAll {
				break // a repeated plain key: the first value wins
			}
			if err := formSet(root, path, v); err != nil {
				return nil, fmt.Errorf("form field %q: %v", k, err)
			}
		}
	}
	out := make(map[string]json.RawMessage, len(root))
	for k, v := range root {
		v = formArrays(v)
		if s, ok := v.(string); ok {
			if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
				if json.Valid([]byte(t)) {
					out[k] = json.RawMessage(t)
					continue
				}
			}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("form field %q: %v", k, err)
		}
		out[k] = b
	}
	return out, nil
}

// formPath splits "a[b][0]" into ["a","b","0"]; "a[]" ends with "".
func formPath(key string) ([]string, error) {
	name, rest, nested := strings.Cut(key, "[")
	if name == "" {
		return nil, fmt.Errorf("form field %q has no name", key)
	}
	path := []string{name}
	if !nested {
		return path, nil
	}
	rest = "[" + rest
	for rest != "" {
		if rest[0] != '[' {
			return nil, fmt.Errorf("form field %q: unexpected %q after a bracket", key, rest)
		}
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return nil, fmt.Errorf("form field %q: unclosed bracket", key)
		}
		path = append(path, rest[1:end])
		rest = rest[end+1:]
	}
	return path, nil
}

func formSet(node map[string]any, path []string, v string) error {
	for i, seg := range path {
		if seg == "" {
			seg = strconv.Itoa(len(node))
		}
		if i == len(path)-1 {
			if _, isMap := node[seg].(map[string]any); isMap {
				return fmt.Errorf("%q is both a value and an object", seg)
			}
			node[seg] = v
			return nil
		}
		next, ok := node[seg].(map[string]any)
		if !ok {
			if _, isStr := node[seg].(string); isStr {
				return fmt.Errorf("%q is both a value and an object", seg)
			}
			next = map[string]any{}
			node[seg] = next
		}
		node = next
	}
	return nil
}

// formArrays turns objects whose keys are all indexes into arrays, in
// index order.
func formArrays(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	allIndexes := len(m) > 0
	for k, child := range m {
		m[k] = formArrays(child)
		if n, err := strconv.Atoi(k); err != nil || n < 0 {
			allIndexes = false
		}
	}
	if !allIndexes {
		return m
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	arr := make([]any, len(keys))
	for i, k := range keys {
		arr[i] = m[k]
	}
	return arr
}
