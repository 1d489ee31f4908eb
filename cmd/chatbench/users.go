package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// readUsers reads a user list: one "jid password" per line; blank lines and
// lines starting with # are skipped.
func readUsers(path string) ([]account, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseUsers(f, path)
}

func parseUsers(r io.Reader, name string) ([]account, error) {
	var out []account
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		fields := strings.Fields(s)
		if len(fields) != 2 || !strings.Contains(fields[0], "@") {
			return nil, fmt.Errorf("%s:%d: want \"jid password\"", name, line)
		}
		out = append(out, account{JID: fields[0], Password: fields[1]})
	}
	return out, sc.Err()
}

// cacheHeader identifies what a cache file was written for.
func cacheHeader(api string, app int64, prefix, domain string) string {
	return fmt.Sprintf("# chatbench users api=%s app=%d prefix=%s domain=%s", api, app, prefix, domain)
}

// writeUsers writes a user list with a header comment.
func writeUsers(path, header string, users []account) error {
	var b strings.Builder
	b.WriteString(header + "\n")
	for _, u := range users {
		b.WriteString(u.JID + " " + u.Password + "\n")
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// restClient creates users through chatd's QuickBlox-style REST API.
type restClient struct {
	base   string
	app    int64
	key    string
	secret string
	domain string
	http   *http.Client
	token  string // application session
}

func newRESTClient(base string, app int64, key, secret, domain string, insecure bool, conns int) *restClient {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: insecure},
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
	}
	return &restClient{base: strings.TrimSuffix(base, "/"), app: app, key: key, secret: secret, domain: domain,
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// apiError is a REST answer other than the expected status.
type apiError struct {
	status int
	body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

func (r *restClient) post(ctx context.Context, path, token string, form url.Values, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("QB-Token", token)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return &apiError{resp.StatusCode, strings.TrimSpace(string(data))}
	}
	return json.Unmarshal(data, out)
}

// signedSession starts a session as the README shows: HMAC-SHA1 of the
// sorted, unescaped parameters with the application's secret; with a login
// it is a user session. It returns the token and the user id (0 without a
// login).
func (r *restClient) signedSession(ctx context.Context, login, password string) (string, int64, error) {
	var nb [8]byte
	rand.Read(nb[:])
	nonce := strconv.FormatUint(binary.BigEndian.Uint64(nb[:])>>33, 10)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	form := url.Values{"application_id": {strconv.FormatInt(r.app, 10)}, "auth_key": {r.key},
		"nonce": {nonce}, "timestamp": {ts}}
	if login != "" {
		form.Set("user[login]", login)
		form.Set("user[password]", password)
	}
	pairs := make([]string, 0, len(form))
	for k, v := range form {
		pairs = append(pairs, k+"="+v[0])
	}
	sort.Strings(pairs)
	mac := hmac.New(sha1.New, []byte(r.secret))
	mac.Write([]byte(strings.Join(pairs, "&")))
	form.Set("signature", hex.EncodeToString(mac.Sum(nil)))
	var out struct {
		Session struct {
			Token  string `json:"token"`
			UserID int64  `json:"user_id"`
		} `json:"session"`
	}
	if err := r.post(ctx, "/session.json", "", form, http.StatusCreated, &out); err != nil {
		return "", 0, fmt.Errorf("POST /session.json: %w", err)
	}
	return out.Session.Token, out.Session.UserID, nil
}

// deleteSession ends a session (DELETE /session.json).
func (r *restClient) deleteSession(ctx context.Context, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, r.base+"/session.json", nil)
	if err != nil {
		return err
	}
	req.Header.Set("QB-Token", token)
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("DELETE /session.json: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("DELETE /session.json: HTTP %d", resp.StatusCode)
	}
	return nil
}

func (r *restClient) jid(userID int64) string {
	return fmt.Sprintf("%d-%d@%s", userID, r.app, r.domain)
}

// ensureUser creates a user, or, when the login is taken, checks the
// password by starting a session as that user (which also gives its id).
func (r *restClient) ensureUser(ctx context.Context, login, password string) (account, bool, error) {
	var out struct {
		User struct {
			ID int64 `json:"id"`
		} `json:"user"`
	}
	err := r.post(ctx, "/users.json", r.token, url.Values{"user[login]": {login}, "user[password]": {password}}, http.StatusCreated, &out)
	if err == nil {
		return account{JID: r.jid(out.User.ID), Password: password}, true, nil
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != http.StatusUnprocessableEntity || !strings.Contains(ae.body, "taken") {
		return account{}, false, fmt.Errorf("POST /users.json %s: %w", login, err)
	}
	token, id, err := r.signedSession(ctx, login, password)
	if err != nil {
		return account{}, false, fmt.Errorf("login %s exists but its password is not %q: %w", login, password, err)
	}
	// The check's session is not needed any more (each live session is one
	// more credential set for chatd's SCRAM to try).
	if err := r.deleteSession(ctx, token); err != nil {
		return account{}, false, err
	}
	return account{JID: r.jid(id), Password: password}, false, nil
}

// createUsers makes sure users prefix-0 … prefix-(n-1) exist, concurrently,
// and returns them in order with how many were new.
func (r *restClient) createUsers(ctx context.Context, prefix, password string, n, workers int, progress func(done int)) ([]account, int, error) {
	token, _, err := r.signedSession(ctx, "", "")
	if err != nil {
		return nil, 0, err
	}
	r.token = token
	users := make([]account, n)
	var (
		mu      sync.Mutex
		created int
		done    int
		first   error
	)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(workers, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				u, isNew, err := r.ensureUser(ctx, fmt.Sprintf("%s-%d", prefix, i), password)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				users[i] = u
				if isNew {
					created++
				}
				done++
				if progress != nil && done%1000 == 0 {
					progress(done)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return nil, created, first
	}
	if ctx.Err() != nil {
		return nil, created, ctx.Err()
	}
	return users, created, nil
}
