// Command kubeletdecode decodes pull-secret documents as the kubelet's credential
// provider does: Go encoding/json into types shaped like those of kubernetes
// pkg/credentialprovider/config.go (DockerConfigJSON, DockerConfig,
// DockerConfigEntry with its UnmarshalJSON over the username/password/email/auth
// wire form, where a non-empty auth replaces username and password). The types are
// written here from that documented shape, so the Go decoder itself is what is tested.
//
// Input: one JSON object per line, {"legacy": bool, "doc": "<document text>"}.
// Output: one line per input, {"ok": false} when json.Unmarshal fails (the kubelet
// then uses no credential of the secret), else {"ok": true, "keyring": {registry
// key: {"username": ..., "password": ...}}}.
//
// secretgate's tests/kubelet_differential.rs builds and runs it when go is on PATH.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
)

// dockerConfigJSON is the .dockerconfigjson document.
type dockerConfigJSON struct {
	Auths       dockerConfig      `json:"auths"`
	HTTPHeaders map[string]string `json:"HttpHeaders,omitempty"`
}

// dockerConfig maps registry keys to credentials (also the whole .dockercfg).
type dockerConfig map[string]dockerConfigEntry

// dockerConfigEntry is what the keyring keeps for one registry key.
type dockerConfigEntry struct {
	Username string
	Password string
	Email    string
}

// entryWire is an entry as written in the document.
type entryWire struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Email    string `json:"email,omitempty"`
	Auth     string `json:"auth,omitempty"`
}

func (e *dockerConfigEntry) UnmarshalJSON(data []byte) error {
	var w entryWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	e.Username, e.Password, e.Email = w.Username, w.Password, w.Email
	if len(w.Auth) == 0 {
		return nil
	}
	user, pass, err := splitAuth(w.Auth)
	if err != nil {
		return err
	}
	e.Username, e.Password = user, pass
	return nil
}

// splitAuth reads base64 of user:password: padded input with StdEncoding,
// unpadded with RawStdEncoding, split at the first colon.
func splitAuth(field string) (string, string, error) {
	enc := base64.RawStdEncoding
	if strings.HasSuffix(strings.TrimSpace(field), "=") {
		enc = base64.StdEncoding
	}
	decoded, err := enc.DecodeString(field)
	if err != nil {
		return "", "", err
	}
	user, pass, found := strings.Cut(string(decoded), ":")
	if !found {
		return "", "", errors.New("auth is not user:password")
	}
	return user, pass, nil
}

type input struct {
	Legacy bool   `json:"legacy"`
	Doc    string `json:"doc"`
}

type creds struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type output struct {
	OK      bool             `json:"ok"`
	Keyring map[string]creds `json:"keyring,omitempty"`
}

func decode(in input) output {
	var cfg dockerConfig
	var err error
	if in.Legacy {
		err = json.Unmarshal([]byte(in.Doc), &cfg)
	} else {
		var doc dockerConfigJSON
		err = json.Unmarshal([]byte(in.Doc), &doc)
		cfg = doc.Auths
	}
	if err != nil {
		return output{OK: false}
	}
	keyring := map[string]creds{}
	for key, entry := range cfg {
		keyring[key] = creds{Username: entry.Username, Password: entry.Password}
	}
	return output{OK: true, Keyring: keyring}
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 0, 1<<16), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for scanner.Scan() {
		var in input
		if err := json.Unmarshal(scanner.Bytes(), &in); err != nil {
			os.Stderr.WriteString("bad input line: " + err.Error() + "\n")
			os.Exit(2)
		}
		if err := enc.Encode(decode(in)); err != nil {
			os.Exit(3)
		}
	}
	if err := scanner.Err(); err != nil {
		os.Exit(4)
	}
}
