package sealbox

import (
	"fmt"

	"golang.org/x/crypto/curve25519"
)

func publicFromPrivate(priv PrivateKey) (PublicKey, error) {
	var pub PublicKey
	k := priv.array()
	b, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		return pub, fmt.Errorf("sealbox: derive public key: %w", err)
	}
	copy(pub[:], b)
	return pub, nil
}
