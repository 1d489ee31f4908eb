package restapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSignedString(t *testing.T) {
	d, err := decodeRequest(func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/session",
			strings.NewReader("user[password]=p%40ss%20w%26rd%3D1%2B2&signature=abc&nonce=99&application_id=1&auth_key=authKeyX&timestamp=1795305916&user[login]=bob"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}(), 1024)
	if err != nil {
		t.Fatal(err)
	}
	want := "application_id=1&auth_key=authKeyX&nonce=99&timestamp=1795305916&user[login]=bob&user[password]=p@ss w&rd=1+2"
	if got := signedString(d.pairs); got != want {
		t.Errorf("signedString =\n %s\nwant\n %s", got, want)
	}
	// A JSON body is signed as the SDK would have sent it as a form.
	j, err := decodeJSON([]byte(`{"application_id":1,"user":{"login":"bob"},"signature":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := signedString(flatten(j.n, "", nil)), "application_id=1&user[login]=bob"; got != want {
		t.Errorf("signed JSON = %q, want %q", got, want)
	}
}
