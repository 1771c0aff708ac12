namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// How an idempotency key is stored: a key of 32 lowercase hex digits (the form the SDK generates) as its 16 bytes, any
/// other key as its text. The two never compare equal (a BLOB is never equal to a TEXT in SQLite), and the mapping
/// depends on the key alone, so a key always finds its own entry; the same digits in upper case are another key, as
/// they are as text.
/// </summary>
internal static class SqliteIdempotencyKey
{
    /// <summary>The length of a key stored as bytes: 32 hex digits.</summary>
    public const int HexLength = 32;

    /// <summary>Binds the stored form of <paramref name="key"/> to the 1-based parameter <paramref name="index"/>.</summary>
    public static void Bind(SqliteRawStatement statement, int index, string key)
    {
        Span<byte> bytes = stackalloc byte[HexLength / 2];
        if (TryCompact(key, bytes))
        {
            statement.Bind(index, bytes);
        }
        else
        {
            statement.Bind(index, key);
        }
    }

    /// <summary>Writes the 16 bytes of a key of 32 lowercase hex digits; false for any other key.</summary>
    public static bool TryCompact(string key, Span<byte> bytes)
    {
        if (key.Length != HexLength)
        {
            return false;
        }

        for (var i = 0; i < bytes.Length; i++)
        {
            var high = Digit(key[2 * i]);
            var low = Digit(key[(2 * i) + 1]);
            if ((high | low) < 0)
            {
                return false;
            }

            bytes[i] = (byte)((high << 4) | low);
        }

        return true;
    }

    private static int Digit(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        _ => -1,
    };
}
