using System.Text;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace HookBroker.Client.Internal;

/// <summary>
/// A raise as it travels: the serialized <c>hookbroker.v1.RaiseRequest</c> (<see cref="Bytes"/>), encoded once when the
/// raise is made and sent as is by every attempt (unary, or as an item of a <c>RaiseStream</c> message), so a raise in
/// flight holds one array instead of a request message with its headers map, its args and its key string.
/// </summary>
/// <param name="Bytes">The serialized request.</param>
/// <param name="Waits">Whether it carries a wait timeout (wait mode): answered late by design.</param>
internal readonly record struct EncodedRaise(byte[] Bytes, bool Waits)
{
    // hookbroker.v1.RaiseRequest as tags (field number << 3 | wire type 2, length-delimited): event = 1, args = 2,
    // headers = 3 (map entries { key = 1; value = 2; }), idempotency_key = 4, ordering_key = 5, wait_timeout = 6, source = 7.
    private const byte EventTag = (1 << 3) | 2;
    private const byte ArgsTag = (2 << 3) | 2;
    private const byte HeadersTag = (3 << 3) | 2;
    private const byte IdempotencyKeyTag = (4 << 3) | 2;
    private const byte OrderingKeyTag = (5 << 3) | 2;
    private const byte WaitTimeoutTag = (6 << 3) | 2;
    private const byte SourceTag = (7 << 3) | 2;
    private const byte EntryKeyTag = (1 << 3) | 2;
    private const byte EntryValueTag = (2 << 3) | 2;

    /// <summary>The serialized size.</summary>
    public int Size => Bytes.Length;

    /// <summary>
    /// Encodes a raise of <paramref name="label"/>: the fields are written in field-number order, empty ones left out,
    /// as the generated message would serialize them. Without <paramref name="idempotencyKey"/>, a new key is generated
    /// (<see cref="IdempotencyKeys"/>) straight into the bytes.
    /// </summary>
    /// <param name="label">The event label.</param>
    /// <param name="args">The serialized args Struct (<see cref="ArgsConverter.ToStructBytes"/>); empty for none.</param>
    /// <param name="idempotencyKey">The caller's key; null or empty to generate one.</param>
    /// <param name="orderingKey">The ordering key, if any.</param>
    /// <param name="source">Who raises, if set.</param>
    /// <param name="waitTimeout">The wait timeout (wait mode), if any.</param>
    /// <param name="headers">The headers, if any.</param>
    public static EncodedRaise Encode(
        string label,
        ReadOnlySpan<byte> args,
        string? idempotencyKey,
        string? orderingKey,
        string? source,
        TimeSpan? waitTimeout,
        ICollection<KeyValuePair<string, string>>? headers)
    {
        var wait = waitTimeout is { } timeout ? Duration.FromTimeSpan(timeout).ToByteArray() : null;
        var size = StringFieldSize(label)
            + BytesFieldSize(args.Length)
            + (string.IsNullOrEmpty(idempotencyKey) ? BytesFieldSize(IdempotencyKeys.Length) : StringFieldSize(idempotencyKey))
            + StringFieldSize(orderingKey)
            + (wait is null ? 0 : 1 + CodedOutputStream.ComputeLengthSize(wait.Length) + wait.Length)
            + StringFieldSize(source);
        if (headers is not null)
        {
            foreach (var (key, value) in headers)
            {
                size += BytesFieldSize(EntrySize(key, value));
            }
        }

        var bytes = new byte[size];
        var at = 0;
        WriteString(bytes, ref at, EventTag, label);
        WriteBytes(bytes, ref at, ArgsTag, args);
        if (headers is not null)
        {
            foreach (var (key, value) in headers)
            {
                bytes[at++] = HeadersTag;
                WriteVarint(bytes, ref at, (uint)EntrySize(key, value));
                WriteStringAlways(bytes, ref at, EntryKeyTag, key);
                WriteStringAlways(bytes, ref at, EntryValueTag, value);
            }
        }

        if (string.IsNullOrEmpty(idempotencyKey))
        {
            bytes[at++] = IdempotencyKeyTag;
            WriteVarint(bytes, ref at, IdempotencyKeys.Length);
            IdempotencyKeys.New(bytes.AsSpan(at, IdempotencyKeys.Length));
            at += IdempotencyKeys.Length;
        }
        else
        {
            WriteString(bytes, ref at, IdempotencyKeyTag, idempotencyKey);
        }

        WriteString(bytes, ref at, OrderingKeyTag, orderingKey);
        if (wait is not null)
        {
            // A message field: present even when empty (a zero wait), as the generated message writes it.
            bytes[at++] = WaitTimeoutTag;
            WriteVarint(bytes, ref at, (uint)wait.Length);
            wait.CopyTo(bytes, at);
            at += wait.Length;
        }

        WriteString(bytes, ref at, SourceTag, source);
        return new EncodedRaise(bytes, wait is not null);
    }

    private static int EntrySize(string key, string value) =>
        1 + CodedOutputStream.ComputeStringSize(key) + 1 + CodedOutputStream.ComputeStringSize(value);

    private static int StringFieldSize(string? value) =>
        string.IsNullOrEmpty(value) ? 0 : 1 + CodedOutputStream.ComputeStringSize(value);

    private static int BytesFieldSize(int length) => length == 0 ? 0 : 1 + CodedOutputStream.ComputeLengthSize(length) + length;

    private static void WriteString(byte[] bytes, ref int at, byte tag, string? value)
    {
        if (!string.IsNullOrEmpty(value))
        {
            WriteStringAlways(bytes, ref at, tag, value);
        }
    }

    private static void WriteStringAlways(byte[] bytes, ref int at, byte tag, string value)
    {
        bytes[at++] = tag;
        WriteVarint(bytes, ref at, (uint)Encoding.UTF8.GetByteCount(value));
        at += Encoding.UTF8.GetBytes(value, bytes.AsSpan(at));
    }

    private static void WriteBytes(byte[] bytes, ref int at, byte tag, ReadOnlySpan<byte> value)
    {
        if (value.IsEmpty)
        {
            return;
        }

        bytes[at++] = tag;
        WriteVarint(bytes, ref at, (uint)value.Length);
        value.CopyTo(bytes.AsSpan(at));
        at += value.Length;
    }

    private static void WriteVarint(byte[] bytes, ref int at, uint value)
    {
        while (value >= 0x80)
        {
            bytes[at++] = (byte)(value | 0x80);
            value >>= 7;
        }

        bytes[at++] = (byte)value;
    }
}
