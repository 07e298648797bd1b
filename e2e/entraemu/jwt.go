package entraemu

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// signingKey is the RSA key pair tokens are signed with, generated per run.
type signingKey struct {
	kid    string
	priv   *rsa.PrivateKey
	signer jose.Signer
	jwk    jose.JSONWebKey
}

func newSigningKey() (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("entraemu: signing key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("entraemu: signing key: %w", err)
	}
	sum := sha1.Sum(der)
	// Entra's kid and x5t are the base64url SHA-1 thumbprint of the key's
	// certificate; a thumbprint of the public key is shaped the same.
	kid := base64.RawURLEncoding.EncodeToString(sum[:])
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5t", kid),
	)
	if err != nil {
		return nil, fmt.Errorf("entraemu: signer: %w", err)
	}
	return &signingKey{
		kid:    kid,
		priv:   priv,
		signer: signer,
		jwk:    jose.JSONWebKey{Key: &priv.PublicKey, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"},
	}, nil
}

// sign serializes claims as a compact RS256 JWT.
func (k *signingKey) sign(claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// AccessClaims are the claims of an access token for Azure DevOps, shaped
// like Entra ID's v1 tokens.
type AccessClaims struct {
	Aud        string   `json:"aud"`
	Iss        string   `json:"iss"`
	Iat        int64    `json:"iat"`
	Nbf        int64    `json:"nbf"`
	Exp        int64    `json:"exp"`
	Acr        string   `json:"acr,omitempty"`
	Aio        string   `json:"aio,omitempty"`
	Amr        []string `json:"amr,omitempty"`
	AppID      string   `json:"appid"`
	AppIDAcr   string   `json:"appidacr"`
	Name       string   `json:"name,omitempty"`
	OID        string   `json:"oid"`
	Scp        string   `json:"scp,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	Sub        string   `json:"sub"`
	TID        string   `json:"tid"`
	UniqueName string   `json:"unique_name,omitempty"`
	UPN        string   `json:"upn,omitempty"`
	Uti        string   `json:"uti"`
	Ver        string   `json:"ver"`
}

// IDClaims are the claims of a v2.0 ID token.
type IDClaims struct {
	Aud               string `json:"aud"`
	Iss               string `json:"iss"`
	Iat               int64  `json:"iat"`
	Nbf               int64  `json:"nbf"`
	Exp               int64  `json:"exp"`
	Name              string `json:"name,omitempty"`
	Nonce             string `json:"nonce,omitempty"`
	OID               string `json:"oid"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Sub               string `json:"sub"`
	TID               string `json:"tid"`
	Uti               string `json:"uti"`
	Ver               string `json:"ver"`
}

// Errors of VerifyAccessToken.
var (
	ErrTokenMalformed = errors.New("entraemu: access token malformed or not signed by this emulator")
	ErrTokenExpired   = errors.New("entraemu: access token expired or not yet valid")
	ErrTokenAudience  = errors.New("entraemu: access token audience is not Azure DevOps")
	ErrTokenIssuer    = errors.New("entraemu: access token issuer is not a tenant of this emulator")
	ErrTokenTenant    = errors.New("entraemu: access token is from another tenant than the organization's")
)

// parseAccess verifies the signature of raw and decodes its claims. It does
// not check times, audience or issuer.
func (k *signingKey) parseAccess(raw string) (AccessClaims, error) {
	var c AccessClaims
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return c, ErrTokenMalformed
	}
	payload, err := jws.Verify(&k.priv.PublicKey)
	if err != nil {
		return c, ErrTokenMalformed
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, ErrTokenMalformed
	}
	return c, nil
}

// checkTimes applies exp and nbf exactly, with no clock skew allowance, so
// that tests stepping a clock across expiry see the boundary where it is.
func checkTimes(now time.Time, nbf, exp int64) error {
	t := now.Unix()
	if t >= exp || t < nbf {
		return ErrTokenExpired
	}
	return nil
}
