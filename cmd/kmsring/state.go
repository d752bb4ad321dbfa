package main

import (
	"time"

	"github.com/kmsring/kmsring/keyring"
)

// keyState is AWS's KeyState of the key.
func keyState(md keyring.Metadata) string { return "Enabled" }

func keyDescription(md keyring.Metadata) string { return "" }

func keyDeletionDate(md keyring.Metadata) time.Time { return time.Time{} }

func descriptionOption(d string) []keyring.Option { return nil }
