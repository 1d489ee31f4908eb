// Package certs loads the TLS certificate chatd serves, or generates a
// self-signed one on first start so that `make run` needs no set-up.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Generated file names inside the directory given to Load.
const (
	CertName = "cert.pem"
	KeyName  = "key.pem"
)

// Load returns the certificate in certFile and keyFile when they are set.
// Otherwise it uses dir/cert.pem and dir/key.pem, generating a self-signed
// certificate for hosts there first when they do not exist yet. It also
// returns the certificate's path, for clients that need to trust it.
func Load(certFile, keyFile, dir string, hosts []string) (tls.Certificate, string, error) {
	if certFile == "" {
		certFile, keyFile = filepath.Join(dir, CertName), filepath.Join(dir, KeyName)
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := generate(certFile, keyFile, hosts); err != nil {
				return tls.Certificate{}, "", err
			}
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("certs: %w", err)
	}
	return cert, certFile, nil
}

// SelfSigned returns a new self-signed certificate for hosts, in memory.
func SelfSigned(hosts []string) (tls.Certificate, []byte, error) {
	certPEM, keyPEM, err := create(hosts)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	return cert, certPEM, err
}

func create(hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"chatd self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func generate(certFile, keyFile string, hosts []string) error {
	certPEM, keyPEM, err := create(hosts)
	if err != nil {
		return fmt.Errorf("certs: generating: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}
