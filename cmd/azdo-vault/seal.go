package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/azdo-sidecar/azdo-sidecar/internal/cliapp"
	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
)

// maxSealInput bounds what seal reads: client secrets are short.
const maxSealInput = 64 << 10

// sealCommand is `azdo-vault seal --public-key B64`: it reads a secret on
// stdin and prints it sealed to that key (box.SealAnonymous, standard
// base64). A trailing newline (echo, a terminal) is not part of the secret.
func sealCommand(e *cliapp.Env) *cli.Command {
	return &cli.Command{
		Name:  "seal",
		Usage: "read a secret on stdin and print it sealed to a runner's public key",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "public-key", Required: true, Usage: "the runner's public `KEY` (standard base64, from keygen)"},
		},
		Action: func(c *cli.Context) error {
			pub, err := sealbox.ParsePublicKey(c.String("public-key"))
			if err != nil {
				return fmt.Errorf("--public-key: %w", err)
			}
			b, err := io.ReadAll(io.LimitReader(e.Stdin, maxSealInput+1))
			if err != nil {
				return fmt.Errorf("read stdin: %w", err)
			}
			if len(b) > maxSealInput {
				return fmt.Errorf("stdin holds more than %d bytes; a secret is shorter", maxSealInput)
			}
			msg := strings.TrimRight(string(b), "\r\n")
			if msg == "" {
				return errors.New("nothing to seal: write the secret on stdin")
			}
			sealed, err := sealbox.Seal(pub, []byte(msg))
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.Stdout, sealed)
			return err
		},
	}
}
