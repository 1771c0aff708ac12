using System.Security.Cryptography;

namespace HookBroker.Client.Internal;

/// <summary>The idempotency keys the SDK gives raises that have none of their own.</summary>
internal static class IdempotencyKeys
{
    // 48 random bits drawn once per process: keys of two processes differ here, keys of one process by the counter.
    private static readonly ulong ProcessPart = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)) & 0xFFFF_FFFF_FFFF;
    private static long counter;

    /// <summary>How long a key made here is: 32 hex digits (ASCII).</summary>
    public const int Length = 32;

    /// <summary>
    /// A new key of 32 hex digits: the Unix millisecond it was made (12), a random part fixed for the process (12) and
    /// a per-process counter (8). Keys made one after another sort one after another: the broker stores keys in an index
    /// (a B-tree in the embedded engine), where time-ordered keys land at its end, a few pages per commit, and random
    /// ones would each dirty a page of their own anywhere in it. Unlike a random UUID per key it costs no call into the
    /// system's random source, and it is unique as long as no process makes 2^32 keys in one millisecond.
    /// </summary>
    public static string New() => string.Create(Length, 0, static (text, _) =>
    {
        Span<byte> utf8 = stackalloc byte[Length];
        New(utf8);
        for (var i = 0; i < Length; i++)
        {
            text[i] = (char)utf8[i];
        }
    });

    /// <summary>A new key (see <see cref="New()"/>) written as <see cref="Length"/> ASCII bytes into <paramref name="utf8"/>.</summary>
    public static void New(Span<byte> utf8)
    {
        var milliseconds = (ulong)TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds();
        var sequence = (uint)Interlocked.Increment(ref counter);
        WriteHex(utf8[..12], milliseconds);
        WriteHex(utf8.Slice(12, 12), ProcessPart);
        WriteHex(utf8.Slice(24, 8), sequence);
    }

    /// <summary>The low <c>4 × text.Length</c> bits of <paramref name="value"/> as lowercase hex digits.</summary>
    private static void WriteHex(Span<byte> text, ulong value)
    {
        for (var i = text.Length - 1; i >= 0; i--)
        {
            text[i] = "0123456789abcdef"u8[(int)(value & 0xF)];
            value >>= 4;
        }
    }
}
