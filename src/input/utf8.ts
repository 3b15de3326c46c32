/**
 * A file's bytes as text, when they are UTF-8. Node's 'utf8' decoding turns bytes that are not
 * into U+FFFD without a word, so a host name could silently become another; Ansible refuses such
 * a file.
 */
import { CriuLockError, type ErrorCode } from '../errors.js';

const strict = new TextDecoder('utf-8', { fatal: true });

export function decodeUtf8(bytes: Uint8Array, file: string, code: ErrorCode): string {
  try {
    return strict.decode(bytes);
  } catch {
    const lossy = Buffer.from(bytes).toString('utf8');
    const at = lossy.indexOf('\uFFFD');
    const line = at < 0 ? undefined : lossy.slice(0, at).split('\n').length;
    throw new CriuLockError(code, 'the file is not UTF-8 text', {
      location: line === undefined ? { file } : { file, line },
      hint: 'save it as UTF-8 (iconv -t UTF-8)',
    });
  }
}
