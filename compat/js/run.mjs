// Drives a kmsring serve endpoint with the AWS SDK for JavaScript v3 and
// the AWS Encryption SDK for JavaScript, unchanged but for the endpoint:
// KMS_ENDPOINT (the URL), KEY_ARN (a key the credentials may use), and the
// usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Run by compat/js_test.go;
// exits non-zero on the first failure.
import assert from 'node:assert/strict'
import { KMS, KMSClient, GenerateDataKeyCommand, EncryptCommand, DecryptCommand, DescribeKeyCommand } from '@aws-sdk/client-kms'
import {
  buildClient, CommitmentPolicy, KmsKeyringNode, getClient,
  NodeCachingMaterialsManager, getLocalCryptographicMaterialsCache
} from '@aws-crypto/client-node'

const endpoint = process.env.KMS_ENDPOINT
const keyArn = process.env.KEY_ARN
const credentials = { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY }
const config = { endpoint, region: 'us-east-1', credentials }

// The JavaScript SDK v3: the endpoint option.
const kms = new KMSClient(config)
const described = await kms.send(new DescribeKeyCommand({ KeyId: keyArn }))
assert.equal(described.KeyMetadata.Arn, keyArn)
const context = { tenant: 'acme' }
const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256', EncryptionContext: context }))
assert.equal(dk.Plaintext.length, 32)
const back = await kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: context }))
assert.deepEqual(Buffer.from(back.Plaintext), Buffer.from(dk.Plaintext))
const enc = await kms.send(new EncryptCommand({ KeyId: keyArn, Plaintext: Buffer.from('js sdk v3') }))
const dec = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }))
assert.equal(Buffer.from(dec.Plaintext).toString(), 'js sdk v3')
await assert.rejects(kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: { tenant: 'other' } })),
  (e) => e.name === 'InvalidCiphertextException')

// The AWS Encryption SDK: getClient(KMS, {endpoint}) as the client
// provider of a KMS keyring, a discovery keyring, and a caching materials
// manager.
const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
const clientProvider = getClient(KMS, config)
const keyring = new KmsKeyringNode({ generatorKeyId: keyArn, clientProvider })
const message = Buffer.from('sealed by the AWS Encryption SDK for JavaScript')
const { result } = await encrypt(keyring, message, { encryptionContext: context })
const opened = await decrypt(keyring, result)
assert.deepEqual(opened.plaintext, message)
assert.equal(opened.messageHeader.encryptionContext.tenant, 'acme')

const discovery = new KmsKeyringNode({ discovery: true, clientProvider })
const found = await decrypt(discovery, result)
assert.deepEqual(found.plaintext, message)

const cmm = new NodeCachingMaterialsManager({
  backingMaterials: keyring,
  cache: getLocalCryptographicMaterialsCache(100),
  maxAge: 60_000,
  maxMessagesEncrypted: 10
})
for (let i = 0; i < 3; i++) {
  const { result: r } = await encrypt(cmm, message, { encryptionContext: context })
  const { plaintext } = await decrypt(cmm, r)
  assert.deepEqual(plaintext, message)
}
console.log(JSON.stringify({ sdk: 'ok', encryptionSDK: 'ok', discovery: 'ok', caching: 'ok' }))
