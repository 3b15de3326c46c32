/**
 * Ansible Vault (format 1.1 and 1.2, cipher AES256) decryption with node's crypto, as
 * ansible/parsing/vault does it: the body is hex of "hex(salt)\nhex(hmac)\nhex(ciphertext)";
 * PBKDF2-HMAC-SHA256 (10000 rounds) of the password and salt gives 80 bytes: the AES-256 key, the
 * HMAC-SHA256 key and the CTR counter block. The HMAC over the ciphertext is checked before use.
 */
import { execFile } from 'node:child_process';
import { createDecipheriv, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { access, constants, readFile } from 'node:fs/promises';
import nodePath from 'node:path';
import { CriuLockError } from '../errors.js';

const HEADER = /^\$ANSIBLE_VAULT;(1\.[12]);([A-Za-z0-9]+)(?:;([^\s;]+))?\s*$/;

export function isVaultText(text: string): boolean {
  return text.trimStart().startsWith('$ANSIBLE_VAULT;');
}

export class VaultError extends Error {}

/** Decrypts vault text; throws VaultError (wrong password, damaged data, unknown format). */
export function decryptVault(text: string, password: string | Buffer): string {
  const lines = text.trim().split(/\r?\n/);
  const header = HEADER.exec((lines[0] ?? '').trim());
  if (!header) throw new VaultError('not an Ansible vault (bad $ANSIBLE_VAULT header)');
  if (header[2] !== 'AES256') throw new VaultError(`unsupported vault cipher ${header[2] ?? ''}`);
  const hex = lines.slice(1).join('').replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw new VaultError('vault data is not hexadecimal');
  const inner = Buffer.from(hex, 'hex').toString('latin1').split('\n');
  const [saltHex, hmacHex, cipherHex] = inner;
  if (inner.length !== 3 || !saltHex || !hmacHex || cipherHex === undefined) {
    throw new VaultError('vault data is damaged (expected salt, HMAC and ciphertext)');
  }
  const salt = Buffer.from(saltHex, 'hex');
  const expected = Buffer.from(hmacHex, 'hex');
  const cipherText = Buffer.from(cipherHex, 'hex');
  const derived = pbkdf2Sync(password, salt, 10000, 80, 'sha256');
  const key = derived.subarray(0, 32);
  const hmacKey = derived.subarray(32, 64);
  const iv = derived.subarray(64, 80);
  const actual = createHmac('sha256', hmacKey).update(cipherText).digest();
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    throw new VaultError('the vault password is wrong (HMAC does not match)');
  }
  const decipher = createDecipheriv('aes-256-ctr', key, iv);
  const padded = Buffer.concat([decipher.update(cipherText), decipher.final()]);
  // Ansible pads with PKCS#7 before CTR encryption.
  const pad = padded[padded.length - 1] ?? 0;
  if (pad < 1 || pad > 16 || pad > padded.length) throw new VaultError('vault data has bad padding');
  return padded.subarray(0, padded.length - pad).toString('utf8');
}

/**
 * The password from --vault-password-file: the file's content without trailing whitespace, or, for
 * an executable file, what it prints (as Ansible does with vault password scripts).
 */
export async function readVaultPassword(file: string): Promise<string> {
  const executable = await access(file, constants.X_OK).then(
    () => true,
    () => false,
  );
  try {
    if (executable) {
      const out = await new Promise<string>((resolve, reject) => {
        // Absolute: execFile looks a name without a "/" up in $PATH, which would run another program.
        execFile(nodePath.resolve(file), [], { timeout: 60_000, maxBuffer: 1 << 20 }, (err, stdout) =>
          err ? reject(new Error(err.message)) : resolve(stdout),
        );
      });
      return out.replace(/\s+$/, '');
    }
    return (await readFile(file, 'utf8')).replace(/\s+$/, '');
  } catch (e) {
    throw new CriuLockError(
      'usage',
      `cannot ${executable ? 'run' : 'read'} vault password file ${file}: ${(e as Error).message}`,
      { location: { file }, hint: 'check the path given to --vault-password-file' },
    );
  }
}
