using System.Globalization;
using StackExchange.Redis;

namespace HookBroker.Broker.Storage.Redis;

/// <summary>
/// How values travel to and from the scripts: times as microseconds since the Unix epoch (exact in Lua's doubles),
/// optional strings with a one-character prefix ("0" null, "1…" the text).
/// </summary>
internal static class RedisValues
{
    private static readonly long MaxMicros = (DateTimeOffset.MaxValue.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;

    public static string Time(DateTimeOffset at) =>
        ((at.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10).ToString(CultureInfo.InvariantCulture);

    public static DateTimeOffset ToTime(RedisValue value)
    {
        var micros = (long)double.Parse(value.ToString(), NumberStyles.Float, CultureInfo.InvariantCulture);
        micros = Math.Clamp(micros, -DateTimeOffset.UnixEpoch.UtcTicks / 10, MaxMicros);
        return new DateTimeOffset(DateTimeOffset.UnixEpoch.UtcTicks + (micros * 10), TimeSpan.Zero);
    }

    public static string Optional(string? value) => value is null ? "0" : "1" + value;

    public static string? FromOptional(RedisValue value)
    {
        var text = value.ToString();
        return text.Length == 0 || text[0] == '0' ? null : text[1..];
    }

    public static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    public static long ToLong(RedisValue value) => long.Parse(value.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture);

    public static int ToInt(RedisValue value) => int.Parse(value.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture);
}
