namespace Vmm.Qmp;

/// <summary>
/// Splits a client's byte stream into top-level JSON values the way QEMU's streaming parser does: values may come
/// back to back, with or without newlines, and may arrive split across reads. It only tracks strings, nesting and
/// top-level scalars; the full parse happens later, on one complete message.
///
/// Bad input is reported as a <see cref="JsonFrame"/> error and the framer resynchronizes: after a lexical error it
/// skips input up to the next line break or other ASCII control character, or up to the next '{' or '[', which
/// starts the next message (QEMU's lexer recovers at the same kinds of points). A value nested deeper than the limit
/// is reported once and skipped as a whole. A message larger than the size limit is fatal: the stream cannot be
/// resynchronized cheaply, so the client is disconnected.
/// </summary>
public sealed class JsonMessageFramer(int maxMessageBytes = JsonMessageFramer.DefaultMaxMessageBytes, int maxDepth = JsonMessageFramer.DefaultMaxDepth)
{
    public const int DefaultMaxMessageBytes = 1 << 20;
    public const int DefaultMaxDepth = 64;

    private readonly MemoryStream message = new();
    private readonly Stack<byte> openers = new();
    private State state = State.Between;
    private int messageBytes;

    // Set when the current value went too deep: it is still tracked (to find its end) but no longer stored.
    private bool discarding;

    private enum State
    {
        /// <summary>Between tokens (inside a value when <see cref="openers"/> is not empty).</summary>
        Between,
        InString,
        InStringEscape,

        /// <summary>A number or keyword at the top level: ends at the first byte that cannot continue it.</summary>
        InTopLevelScalar,

        /// <summary>Skipping garbage after a lexical error.</summary>
        Recovering,

        /// <summary>After a fatal error: everything is ignored.</summary>
        Closed,
    }

    public int MaxMessageBytes => maxMessageBytes;

    public int MaxDepth => maxDepth;

    public bool IsClosed => state == State.Closed;

    /// <summary>Consumes <paramref name="data"/> and appends what it completes to <paramref name="output"/>.</summary>
    public void Feed(ReadOnlySpan<byte> data, List<JsonFrame> output)
    {
        foreach (byte b in data)
        {
            Step(b, output);
            if (state == State.Closed)
            {
                return;
            }
        }
    }

    private void Step(byte b, List<JsonFrame> output)
    {
        // A few transitions look at a byte without consuming it; they loop to handle it in the new state.
        while (true)
        {
            switch (state)
            {
                case State.Closed:
                    return;

                case State.Recovering:
                    if (b is (byte)'{' or (byte)'[')
                    {
                        state = State.Between;
                        continue;
                    }

                    if (b < 0x20 && b != (byte)'\t')
                    {
                        state = State.Between;
                    }

                    return;

                case State.InString:
                    if (b < 0x20)
                    {
                        LexicalError($"control character 0x{b:x2} in string", output);
                        return;
                    }

                    if (!Append(b, output))
                    {
                        return;
                    }

                    if (b == (byte)'\\')
                    {
                        state = State.InStringEscape;
                    }
                    else if (b == (byte)'"')
                    {
                        state = State.Between;
                        if (openers.Count == 0)
                        {
                            Complete(output);
                        }
                    }

                    return;

                case State.InStringEscape:
                    if (b < 0x20)
                    {
                        LexicalError($"control character 0x{b:x2} in string", output);
                        return;
                    }

                    if (!Append(b, output))
                    {
                        return;
                    }

                    state = State.InString;
                    return;

                case State.InTopLevelScalar:
                    if (IsScalarByte(b))
                    {
                        Append(b, output);
                        return;
                    }

                    state = State.Between;
                    Complete(output);
                    continue;

                case State.Between:
                    Between(b, output);
                    return;
            }
        }
    }

    private void Between(byte b, List<JsonFrame> output)
    {
        bool inValue = openers.Count > 0;
        switch (b)
        {
            case (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n':
                if (inValue)
                {
                    Append(b, output);
                }

                return;

            case (byte)'{' or (byte)'[':
                if (openers.Count == maxDepth && !discarding)
                {
                    output.Add(JsonFrame.OfError($"JSON parse error, nesting depth limit ({maxDepth}) exceeded"));
                    discarding = true;
                    message.SetLength(0);
                }

                if (!Append(b, output))
                {
                    return;
                }

                openers.Push(b);
                return;

            case (byte)'}' or (byte)']':
                if (!inValue)
                {
                    LexicalError($"stray '{(char)b}'", output);
                    return;
                }

                byte expected = openers.Peek() == (byte)'{' ? (byte)'}' : (byte)']';
                if (b != expected)
                {
                    LexicalError($"'{(char)b}' where '{(char)expected}' was expected", output);
                    return;
                }

                if (!Append(b, output))
                {
                    return;
                }

                openers.Pop();
                if (openers.Count == 0)
                {
                    Complete(output);
                }

                return;

            case (byte)'"':
                if (!Append(b, output))
                {
                    return;
                }

                state = State.InString;
                return;

            case (byte)',' or (byte)':':
                if (!inValue)
                {
                    LexicalError($"stray '{(char)b}'", output);
                    return;
                }

                Append(b, output);
                return;

            default:
                if (!IsScalarByte(b))
                {
                    LexicalError(b is >= 0x20 and < 0x7f ? $"invalid character '{(char)b}'" : $"invalid byte 0x{b:x2}", output);
                    return;
                }

                if (!Append(b, output))
                {
                    return;
                }

                if (!inValue)
                {
                    state = State.InTopLevelScalar;
                }

                return;
        }
    }

    /// <summary>Letters, digits and the punctuation of numbers: what numbers and true/false/null are made of.</summary>
    private static bool IsScalarByte(byte b) =>
        b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9'
            or (byte)'-' or (byte)'+' or (byte)'.';

    /// <summary>Adds a byte to the current message; false (and closed) when that makes it too large.</summary>
    private bool Append(byte b, List<JsonFrame> output)
    {
        if (++messageBytes > maxMessageBytes)
        {
            output.Add(JsonFrame.OfError($"JSON message size limit exceeded ({maxMessageBytes} bytes); closing the connection", fatal: true));
            Reset();
            state = State.Closed;
            return false;
        }

        if (!discarding)
        {
            message.WriteByte(b);
        }

        return true;
    }

    private void Complete(List<JsonFrame> output)
    {
        if (!discarding)
        {
            output.Add(JsonFrame.OfMessage(message.ToArray()));
        }

        Reset();
    }

    private void LexicalError(string what, List<JsonFrame> output)
    {
        output.Add(JsonFrame.OfError($"JSON parse error, {what}"));
        Reset();
        state = State.Recovering;
    }

    private void Reset()
    {
        message.SetLength(0);
        openers.Clear();
        messageBytes = 0;
        discarding = false;
        state = State.Between;
    }
}
