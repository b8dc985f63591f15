import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeExchange } from '../../../server/src/lsp/decodeExchange';

const VISA_FCI = '6F258407A0000000031010A51A500A56495341204445424954870101' + '9F38039F1A025F2D02656E';

test('a SELECT by AID: command fields, case 4S, response as a TLV tree with tag names', () => {
  const d = decodeExchange('00A4040007A000000003101000', `${VISA_FCI}9000`);
  assert.equal(d.command.cla, '00');
  assert.match(d.command.claMeaning, /interindustry, channel 0/);
  assert.equal(d.command.ins, 'A4');
  assert.equal(d.command.insName, 'SELECT');
  assert.equal(d.command.p1, '04');
  assert.equal(d.command.case, '4S');
  assert.equal(d.command.lc, 7);
  assert.equal(d.command.le, 256);
  assert.equal(d.command.data, 'A0 00 00 00 03 10 10');
  assert.match(d.command.summary, /^SELECT \(by DF name\)/);
  assert.equal(d.response.sw, '9000');
  assert.equal(d.response.swCategory, 'success');
  assert.equal(d.response.tlv?.[0].tag, '6F');
  assert.equal(d.response.tlv?.[0].name, 'File control information (FCI)');
  const a5 = d.response.tlv?.[0].children?.find((n) => n.tag === 'A5');
  const label = a5?.children?.find((n) => n.tag === '50');
  assert.equal(label?.text, 'VISA DEBIT');
  assert.equal(label?.value, '56 49 53 41 20 44 45 42 49 54');
});

test('a VERIFY logged with the PIN masked stays masked and is not parsed as TLV', () => {
  const d = decodeExchange('0020000104********', '9000');
  assert.equal(d.command.insName, 'VERIFY');
  assert.equal(d.command.data, '** ** ** **');
  assert.equal(d.command.dataTlv, undefined);
  assert.equal(d.command.case, '3S');
  assert.doesNotMatch(JSON.stringify(d), /3132|1234/);
});

test('status words with details, response data that is not TLV, a malformed command', () => {
  const d = decodeExchange('00B0000010', '010203');
  assert.equal(d.command.case, '2S');
  assert.equal(d.response.data, '01');
  assert.equal(d.response.sw, '0203');
  assert.equal(d.response.tlvError, 'not TLV');
  assert.equal(decodeExchange('0020008100', '63C2').response.retries, 2);
  assert.equal(decodeExchange('00A4040000', '6112').response.available, 0x12);
  const bad = decodeExchange('00A404', '6700');
  assert.ok(bad.command.errors.length > 0);
  assert.equal(bad.response.swCategory, 'error');
});

test('text that is not hex is a BAD_REQUEST with a clear message', () => {
  assert.throws(() => decodeExchange('00A4XX', '9000'), (e: Error & { code?: string }) => e.code === 'BAD_REQUEST' && /not hex/.test(e.message));
  assert.throws(() => decodeExchange('00A', '9000'), /not hex/);
  assert.throws(() => decodeExchange(undefined as unknown as string, '9000'), /hex strings/);
});
