// A javax.smartcardio client for the comparison tests (test/refstack/javaSmartcardio.test.ts):
// the same program runs against pcscd + vpcd and against the workbench's PC/SC service, and
// the two outputs are compared field by field. Compiled by the test with javac into a temp
// folder (no .class is committed). One JSON object per line on stdout:
//   {"waiting":"insertion"} / {"waiting":"removal"}  the test then inserts / removes the card
//   {"step":NAME, ...}                                 a fact to compare
// Usage: java SmartcardioClient READER
// The PC/SC library is Java's (sun.security.smartcardio.library, default libpcsclite);
// libpcsclite reads PCSCLITE_CSOCK_NAME. sun.security.smartcardio.t0GetResponse /
// t1GetResponse=false turn off smartcardio's own GET RESPONSE and 6Cxx handling.
import java.util.ArrayList;
import java.util.List;
import javax.smartcardio.Card;
import javax.smartcardio.CardChannel;
import javax.smartcardio.CardException;
import javax.smartcardio.CardTerminal;
import javax.smartcardio.CardTerminals;
import javax.smartcardio.CommandAPDU;
import javax.smartcardio.ResponseAPDU;
import javax.smartcardio.TerminalFactory;

public final class SmartcardioClient {
  // SELECT of an application (the test's card answers 61 0C: its FCI waits for GET RESPONSE).
  static final String SELECT = "00A4040007F0574244454D4F";
  // READ BINARY with Le = 00 (256): the test's card answers 6C 08 (wrong length, 8 bytes there).
  static final String READ_WRONG_LE = "00B0000000";
  static final String READ = "00B0000008";

  public static void main(String[] args) throws Exception {
    String readerName = args[0];
    TerminalFactory factory = TerminalFactory.getInstance("PC/SC", null);
    CardTerminals terminals = factory.terminals();
    List<String> names = new ArrayList<>();
    for (CardTerminal t : terminals.list()) names.add(t.getName());
    out("terminals", "names", names);
    List<String> present = new ArrayList<>();
    for (CardTerminal t : terminals.list(CardTerminals.State.CARD_PRESENT)) present.add(t.getName());
    out("cardPresentTerminals", "names", present);
    CardTerminal terminal = terminals.getTerminal(readerName);
    if (terminal == null) throw new IllegalStateException("no terminal " + readerName);

    // The reader starts empty.
    out("isCardPresent", "value", terminal.isCardPresent());
    out("waitForCardAbsentEmpty", "value", terminal.waitForCardAbsent(300));
    long t0 = System.nanoTime();
    boolean early = terminal.waitForCardPresent(300);
    long ms = (System.nanoTime() - t0) / 1_000_000;
    out("waitForCardPresentTimeout", "value", early, "waitedAtLeast250ms", ms >= 250);
    // Java's connect to an empty reader.
    try {
      terminal.connect("*");
      out("connectEmpty", "ok", true);
    } catch (CardException e) {
      out("connectEmpty", "error", error(e));
    }

    out("waiting", "insertion");
    out("waitForCardPresent", "value", terminal.waitForCardPresent(20_000));
    out("isCardPresentAfterInsertion", "value", terminal.isCardPresent());

    // The card's ATR says T=1 only: T=0 is refused.
    try {
      Card c = terminal.connect("T=0");
      out("connectT0", "ok", true, "protocol", c.getProtocol());
      c.disconnect(false);
    } catch (CardException e) {
      out("connectT0", "error", error(e));
    }
    Card card = terminal.connect("*");
    out("connectAny", "protocol", card.getProtocol(), "atr", hex(card.getATR().getBytes()));
    // smartcardio keeps one Card per terminal and JVM: a second connect while connected is refused.
    try {
      terminal.connect("T=1");
      out("connectAgain", "ok", true);
    } catch (CardException e) {
      out("connectAgain", "error", error(e));
    }
    CardChannel ch = card.getBasicChannel();
    out("transmitSelect", "response", transmit(ch, SELECT));
    out("transmitWrongLe", "response", transmit(ch, READ_WRONG_LE));
    out("transmitRead", "response", transmit(ch, READ));
    out("transmitUnknown", "response", transmit(ch, "80CA9F7F00"));

    // A transaction (SCardBeginTransaction / SCardEndTransaction).
    card.beginExclusive();
    out("beginExclusive", "ok", true);
    out("transmitDuringExclusive", "response", transmit(ch, READ));
    card.endExclusive();
    out("endExclusive", "ok", true);

    // disconnect(true): SCardDisconnect with SCARD_RESET_CARD.
    card.disconnect(true);
    out("disconnectReset", "ok", true);
    try {
      card.getBasicChannel();
      out("disconnectedHandle", "ok", true);
    } catch (IllegalStateException e) {
      out("disconnectedHandle", "illegalState", e.getMessage());
    }
    Card card2 = terminal.connect("T=1");
    out("connectT1AfterReset", "protocol", card2.getProtocol(), "atr", hex(card2.getATR().getBytes()));
    out("transmitAfterReconnect", "response", transmit(card2.getBasicChannel(), SELECT));

    out("waiting", "removal");
    out("waitForCardAbsent", "value", terminal.waitForCardAbsent(20_000));
    out("isCardPresentAfterRemoval", "value", terminal.isCardPresent());
    out("transmitAfterRemoval", "response", transmit(card2.getBasicChannel(), READ));
    try {
      card2.disconnect(false);
      out("disconnectAfterRemoval", "ok", true);
    } catch (CardException e) {
      out("disconnectAfterRemoval", "error", error(e));
    }
    out("done", "ok", true);
  }

  /** The response (data and SW in hex), or the error as smartcardio reports it. */
  static Object transmit(CardChannel ch, String apdu) {
    try {
      ResponseAPDU r = ch.transmit(new CommandAPDU(bytes(apdu)));
      return hex(r.getBytes());
    } catch (CardException e) {
      return error(e);
    } catch (IllegalStateException e) {
      return "IllegalStateException: " + e.getMessage();
    }
  }

  /** "message / cause's message": the cause is the PC/SC code (e.g. SCARD_W_RESET_CARD). */
  static String error(Throwable e) {
    Throwable c = e.getCause();
    return e.getMessage() + (c != null ? " / " + c.getMessage() : "");
  }

  static byte[] bytes(String hex) {
    byte[] b = new byte[hex.length() / 2];
    for (int i = 0; i < b.length; i++) b[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
    return b;
  }

  static String hex(byte[] b) {
    StringBuilder s = new StringBuilder();
    for (byte x : b) s.append(String.format("%02X", x & 0xff));
    return s.toString();
  }

  static void out(String step, Object... kv) {
    StringBuilder s = new StringBuilder("{");
    if (kv.length == 1) {
      // {"waiting":"insertion"}
      s.append(json(step)).append(':').append(json(kv[0]));
    } else {
      s.append("\"step\":").append(json(step));
      for (int i = 0; i + 1 < kv.length; i += 2) s.append(',').append(json(kv[i])).append(':').append(json(kv[i + 1]));
    }
    System.out.println(s.append('}'));
    System.out.flush();
  }

  static String json(Object o) {
    if (o instanceof Boolean || o instanceof Number) return o.toString();
    if (o instanceof List) {
      StringBuilder s = new StringBuilder("[");
      for (Object x : (List<?>) o) s.append(s.length() > 1 ? "," : "").append(json(x));
      return s.append(']').toString();
    }
    StringBuilder s = new StringBuilder("\"");
    for (char c : String.valueOf(o).toCharArray()) {
      if (c == '"' || c == '\\') s.append('\\').append(c);
      else if (c < 0x20) s.append(String.format("\\u%04x", (int) c));
      else s.append(c);
    }
    return s.append('"').toString();
  }
}
