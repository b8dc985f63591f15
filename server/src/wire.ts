// Types that travel from the helper through the extension to the APDU Log panel, declared
// once. Types only, no runtime code: server/src/protocol.ts and webview/src/protocol.ts
// re-export them with `export type`, which the bundler erases, so the webview bundle holds
// no server code (test/unit/webview/bundle.test.ts checks both).

/** How a status word ended: 90 00 and 61 xx succeed, 62 xx / 63 xx warn, the rest fail. */
export type SwCategory = 'success' | 'warning' | 'error';

/** One BER-TLV data object of a decoded exchange; `value` (spaced hex) on primitive objects. */
export interface TlvView {
  tag: string;
  name?: string;
  length: number;
  value?: string;
  /** The value as text, for tags that hold text. */
  text?: string;
  children?: TlvView[];
}

/** An exchange of the log decoded field by field, shown when its row is expanded (PIN bytes stay masked as `**`). */
export interface DecodedExchange {
  command: {
    cla: string; claMeaning: string; ins: string; insName?: string; p1: string; p2: string;
    /** One line: `SELECT (by DF name) CLA 00 P1 04 P2 00 Lc 07 Le 256`. */
    summary: string;
    case?: string; extended: boolean; lc?: number; le?: number;
    /** P1 and P2 explained (the editor's hover says the same): `{ field: 'P1', value: '04', meaning: 'select by DF name (AID)' }`. */
    params?: Array<{ field: 'P1' | 'P2' | 'P1P2'; value: string; meaning: string }>;
    /** Spaced hex; masked bytes as `**`. */
    data?: string;
    dataTlv?: TlvView[];
    errors: string[];
  };
  response: {
    data?: string; tlv?: TlvView[];
    /** Why the data is not shown as TLV: quiet, e.g. "not TLV (text)". */
    tlvError?: string;
    /** The data as printable ASCII, one character per byte, `.` for the others. */
    ascii?: string;
    /** True when nearly all the data is printable text. */
    isText?: boolean;
    sw: string; swMeaning: string; swCategory: SwCategory;
    retries?: number; available?: number; correctLe?: number;
  };
}
