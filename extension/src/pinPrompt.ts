// The PIN prompt: what the masked box says, and the answer sealed for the helper that asked.
// No vscode import, so unit tests drive it.
import { type AskPinParams, askPinAad, sealPin, type SealedPin } from '../../server/src/protocol';

/** `hello.apdu` from `file:///ws/hello.apdu`, `Untitled-1` from `untitled:Untitled-1`. */
export function scriptName(uri: string): string {
  const noScheme = uri.replace(/^[a-z][a-z0-9+.-]*:/i, '').replace(/[?#].*$/, '');
  const last = noScheme.split(/[/\\]/).filter(Boolean).pop() ?? noScheme;
  try { return decodeURIComponent(last); } catch { return last; }
}

/**
 * Title and prompt of the box: the label once, then the reader and the script line, e.g.
 * `User PIN — Workbench Simulator 00 00, hello.apdu:7`; the prompt says the tries left
 * when the retry counter was just read ("2 tries left."), never the label again.
 */
export function pinPromptText(p: Pick<AskPinParams, 'label' | 'reader' | 'uri' | 'line' | 'tries' | 'client'>): { title: string; prompt: string } {
  const where: string[] = [];
  if (p.reader) where.push(p.reader);
  if (p.uri && p.line) where.push(`${scriptName(p.uri)}:${p.line}`);
  else if (p.uri) where.push(scriptName(p.uri));
  else if (p.line) where.push(`line ${p.line}`);
  // A script run by another extension through the API: the person sees who asks.
  if (p.client) where.push(`asked by ${p.client}`);
  return {
    title: where.length ? `${p.label} — ${where.join(', ')}` : p.label,
    prompt: `${triesText(p.tries)}The PIN goes to the card only; it is never logged or saved.`,
  };
}

/** "2 tries left. " when the retry counter was just read; a wrong PIN on the last try blocks it. */
function triesText(tries: number | undefined): string {
  if (tries === undefined || !Number.isInteger(tries) || tries < 0) return '';
  if (tries === 1) return '1 try left: a wrong PIN blocks it. ';
  return `${tries} tries left. `;
}

/** The answer to a prompt: the PIN sealed with the helper's key, bound to this prompt. */
export function sealedAnswer(key: Buffer, p: AskPinParams, pin: string): { sealed: SealedPin } {
  return { sealed: sealPin(key, pin, askPinAad(p)) };
}
