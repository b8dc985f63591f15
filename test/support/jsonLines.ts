// The JSON lines a client program prints (the refstack's Python clients): each complete line that is a
// JSON object, as it comes; other lines (a library's own messages) are skipped.

/** Calls `fn` with each line of `stream` that is a JSON object, as lines complete. */
export function eachJsonLine(stream: NodeJS.ReadableStream, fn: (o: Record<string, unknown>) => void): void {
  let partial = '';
  stream.on('data', (b: Buffer) => {
    partial += b.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (line.startsWith('{')) fn(JSON.parse(line) as Record<string, unknown>);
    }
  });
}
