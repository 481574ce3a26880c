package kuniq.peers.kstreams;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;

/**
 * The two fields of a frame that count: the top-level {@code uid} and {@code ts} (see
 * FORMAT.md in the project's shared notes).
 *
 * <p>{@link #parse} reads the frame with Jackson's streaming parser, top level only: nested
 * objects and arrays are skipped whole with {@code skipChildren()}, so their decoy {@code uid}
 * and {@code ts} keys are never seen. It stops as soon as both fields are found, as kuniq's
 * scanner does, so the rest of a 2 KB frame is not parsed (nor validated).
 *
 * <p>A frame is usable when it is a JSON object with a string {@code uid} and a {@code ts} that
 * is a non-negative integer or a string of decimal digits (the challenge warns that timestamps
 * come "both as strings and uints"), in seconds. Anything else (not JSON, not an object, a field
 * missing or of another type, a number too large for milliseconds) makes {@link #parse} return
 * null; it never throws.
 */
final class Frame {
    /** Shared and thread-safe; parsers made from it are not, and live for one call. */
    private static final JsonFactory JSON = new ObjectMapper().getFactory();

    /** Largest ts in seconds whose milliseconds still fit in a long. */
    private static final long MAX_TS_SECS = Long.MAX_VALUE / 1000;

    final String uid;
    final long tsSecs;

    private Frame(String uid, long tsSecs) {
        this.uid = uid;
        this.tsSecs = tsSecs;
    }

    /** Start of the frame's minute, unix milliseconds: floor(ts / 60) * 60 s. */
    long minuteStartMillis() {
        return tsSecs / 60 * 60_000;
    }

    /** The frame's uid and ts, or null when the frame is not usable (see the class comment). */
    static Frame parse(byte[] value) {
        if (value == null) {
            return null;
        }
        try (JsonParser p = JSON.createParser(value)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            String uid = null;
            long ts = -1;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken token = p.nextToken();
                if ("uid".equals(name)) {
                    if (token != JsonToken.VALUE_STRING) {
                        return null;
                    }
                    uid = p.getText();
                } else if ("ts".equals(name)) {
                    ts = tsSecs(p, token);
                    if (ts < 0) {
                        return null;
                    }
                } else {
                    p.skipChildren();
                }
                if (uid != null && ts >= 0) {
                    return new Frame(uid, ts);
                }
            }
            return null;
        } catch (IOException | RuntimeException e) {
            // Malformed JSON or a number out of range: not usable, counted by the caller.
            return null;
        }
    }

    /** A ts value in seconds, or -1 when it is neither a fitting uint nor a string of digits. */
    private static long tsSecs(JsonParser p, JsonToken token) throws IOException {
        if (token == JsonToken.VALUE_NUMBER_INT) {
            if (p.getNumberType() != JsonParser.NumberType.INT && p.getNumberType() != JsonParser.NumberType.LONG) {
                return -1;
            }
            long ts = p.getLongValue();
            return ts >= 0 && ts <= MAX_TS_SECS ? ts : -1;
        }
        if (token == JsonToken.VALUE_STRING) {
            String s = p.getText();
            if (s.isEmpty() || s.length() > 18) {
                return -1;
            }
            long ts = 0;
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                if (c < '0' || c > '9') {
                    return -1;
                }
                ts = ts * 10 + (c - '0');
            }
            return ts <= MAX_TS_SECS ? ts : -1;
        }
        return -1;
    }
}
