package main

import (
	"context"

	"github.com/kmsring/kmsring/keyring"
	"github.com/spf13/cobra"
)

const contextUsage = "encryption context: k=v,k2=v2 or a JSON object; decryption needs the same"

func (a *app) cryptoCommands() []*cobra.Command {
	return []*cobra.Command{
		a.generateDataKeyCommand("generate-data-key", keyring.OpGenerateDataKey),
		a.generateDataKeyCommand("generate-data-key-without-plaintext", keyring.OpGenerateDataKeyWithoutPlaintext),
		a.encryptCommand(), a.decryptCommand(),
	}
}

// algorithmFlag adds aws's --encryption-algorithm, which takes the one
// algorithm kmsring keys have.
func algorithmFlag(c *cobra.Command) {
	var alg string
	c.Flags().StringVar(&alg, "encryption-algorithm", encryptionAlg, "the encryption algorithm: SYMMETRIC_DEFAULT, the only one")
	c.PreRunE = func(*cobra.Command, []string) error {
		if alg != encryptionAlg {
			return usageError("--encryption-algorithm must be %s, not %q", encryptionAlg, alg)
		}
		return nil
	}
}

func (a *app) generateDataKeyCommand(use string, op keyring.Operation) *cobra.Command {
	var spec, ecArg string
	var nbytes int
	c := &cobra.Command{
		Use:   use,
		Short: "Make a data key: its plaintext and its blob under the key",
		Long: `Make a fresh random data key and print its plaintext (base64) and its blob
under the key's current version (CiphertextBlob, base64), as aws kms
generate-data-key does. Encrypt your data with the plaintext, then forget it;
store the blob beside the data; decrypt gives the plaintext back. The blob
names the key and version, so decrypt needs neither.`,
		Example: `  kmsring generate-data-key --key-id alias/orders --encryption-context order=1001`,
		GroupID: "crypto",
	}
	if op == keyring.OpGenerateDataKeyWithoutPlaintext {
		c.Short = "Make a data key and print only its blob"
		c.Long = `Make a fresh random data key and print only its blob (CiphertextBlob), for a
system that will decrypt it later.`
		c.Example = `  kmsring generate-data-key-without-plaintext --key-id alias/orders`
	}
	c.Flags().StringVar(&spec, "key-spec", "AES_256", "data key size: AES_256 or AES_128")
	c.Flags().IntVar(&nbytes, "number-of-bytes", 0, "data key size in bytes, 1 to 1024 (instead of --key-spec)")
	c.MarkFlagsMutuallyExclusive("key-spec", "number-of-bytes")
	c.Flags().StringVar(&ecArg, "encryption-context", "", contextUsage)
	c.RegisterFlagCompletionFunc("key-spec", cobra.FixedCompletions([]string{"AES_256", "AES_128"}, cobra.ShellCompDirectiveNoFileComp))
	var ks keyring.KeySpec
	var ec map[string]string
	c.PreRunE = func(cmd *cobra.Command, _ []string) (err error) {
		ec, err = parseContext(ecArg)
		if cmd.Flags().Changed("number-of-bytes") {
			if nbytes < 1 || nbytes > keyring.MaxDataKeySize {
				return usageError("--number-of-bytes must be 1 to %d, not %d", keyring.MaxDataKeySize, nbytes)
			}
			return err
		}
		switch spec {
		case "AES_256":
			ks = keyring.AES256
		case "AES_128":
			ks = keyring.AES128
		default:
			return usageError("--key-spec must be AES_256 or AES_128, not %q", spec)
		}
		return err
	}
	return a.keyCommand(string(op), c, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		opts := []keyring.OpOption{keyring.WithKeySpec(ks), keyring.WithEncryptionContext(ec)}
		if nbytes > 0 {
			opts = append(opts, keyring.WithNumberOfBytes(nbytes))
		}
		if op == keyring.OpGenerateDataKeyWithoutPlaintext {
			dk, err := k.GenerateDataKeyWithoutPlaintext(ctx, opts...)
			if err != nil {
				return nil, err
			}
			return dataKeyOutput{CiphertextBlob: dk.Ciphertext, KeyId: a.keyARN(k.ID())}, nil
		}
		dk, err := k.GenerateDataKey(ctx, opts...)
		if err != nil {
			return nil, err
		}
		return dataKeyOutput{CiphertextBlob: dk.Ciphertext, Plaintext: dk.Plaintext, KeyId: a.keyARN(k.ID())}, nil
	})
}

func (a *app) encryptCommand() *cobra.Command {
	var ptArg, ecArg string
	c := &cobra.Command{
		Use:   "encrypt",
		Short: "Encrypt up to 4096 bytes directly under the key",
		Long: `Encrypt a small plaintext (1 to 4096 bytes: a password, a data key) directly
under the key's current version and print the ciphertext blob in base64, as
aws kms encrypt does. --plaintext takes fileb://PATH for a file's bytes or
base64 text. For larger data, seal a file.`,
		Example: `  kmsring encrypt --key-id alias/orders --plaintext fileb://secret.txt --encryption-context app=billing
  kmsring --output json encrypt --key-id alias/orders --plaintext fileb://secret.txt | jq -r .CiphertextBlob | base64 -d > secret.bin`,
		GroupID: "crypto",
	}
	c.Flags().StringVar(&ptArg, "plaintext", "", "the plaintext: fileb://PATH, or base64 text (raw text with --cli-binary-format raw-in-base64-out)")
	c.Flags().StringVar(&ecArg, "encryption-context", "", contextUsage)
	c.MarkFlagRequired("plaintext")
	algorithmFlag(c)
	return a.keyCommand(string(keyring.OpEncrypt), c, func(ctx context.Context, k *keyring.Keyring) (any, error) {
		ec, err := parseContext(ecArg)
		if err != nil {
			return nil, err
		}
		pt, err := a.readBlob("plaintext", ptArg)
		if err != nil {
			return nil, err
		}
		defer clear(pt)
		blob, err := k.Encrypt(ctx, pt, keyring.WithEncryptionContext(ec))
		if err != nil {
			return nil, err
		}
		return encryptOutput{CiphertextBlob: blob, KeyId: a.keyARN(k.ID()), EncryptionAlgorithm: encryptionAlg}, nil
	})
}

func (a *app) decryptCommand() *cobra.Command {
	var blobArg, ecArg, ref string
	c := &cobra.Command{
		Use:   "decrypt",
		Short: "Decrypt a blob from encrypt or generate-data-key",
		Long: `Decrypt a ciphertext blob made by encrypt or generate-data-key and print the
plaintext in base64, as aws kms decrypt does. The blob names its key and
version, so --key-id is optional; given, the blob must belong to that key.
The encryption context must be the one used to encrypt.`,
		Example: `  kmsring decrypt --ciphertext-blob fileb://secret.bin --encryption-context app=billing
  kmsring decrypt --ciphertext-blob fileb://secret.bin --encryption-context app=billing | jq -r .Plaintext | base64 -d`,
		GroupID: "crypto",
		Args:    cobra.NoArgs,
	}
	c.Flags().StringVar(&blobArg, "ciphertext-blob", "", "the blob: fileb://PATH, or base64 text")
	c.Flags().StringVar(&ecArg, "encryption-context", "", contextUsage)
	c.Flags().StringVar(&ref, "key-id", "", "the key the blob must belong to (optional)")
	c.MarkFlagRequired("ciphertext-blob")
	algorithmFlag(c)
	c.RunE = a.op(func(ctx context.Context, _ *cobra.Command, _ []string) error {
		ec, err := parseContext(ecArg)
		if err != nil {
			return err
		}
		blob, err := a.readBlob("ciphertext-blob", blobArg)
		if err != nil {
			return err
		}
		if ref == "" {
			id, _, err := keyring.ParseCiphertext(blob)
			if err != nil {
				return err
			}
			ref = id
		}
		k, err := a.loadKey(ctx, ref)
		if err != nil {
			a.record(ctx, string(keyring.OpDecrypt), ref, err)
			return err
		}
		opts := []keyring.OpOption{keyring.WithEncryptionContext(ec)}
		if a.allowNonApproved {
			opts = append(opts, keyring.AllowNonApproved())
		}
		pt, err := k.Decrypt(ctx, blob, opts...)
		if err != nil {
			return err
		}
		defer clear(pt)
		return a.print(decryptOutput{KeyId: a.keyARN(k.ID()), Plaintext: pt, EncryptionAlgorithm: encryptionAlg})
	})
	return c
}
