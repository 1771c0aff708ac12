using System.Diagnostics;
using Google.Protobuf.WellKnownTypes;

namespace HookBroker.Benchmarks;

/// <summary>The ~200-byte args every scenario sends: a send timestamp, a sequence number and user-like fields.</summary>
internal static class Payload
{
    public static readonly string Pad = new('x', 96);

    public static Struct Args(long sequence) => new()
    {
        Fields =
        {
            ["ts"] = Value.ForNumber(Stopwatch.GetTimestamp()),
            ["seq"] = Value.ForNumber(sequence),
            ["username"] = Value.ForString("user-" + sequence),
            ["email"] = Value.ForString("user-" + sequence + "@example.com"),
            ["pad"] = Value.ForString(Pad),
        },
    };

    public static string Json(long sequence) =>
        $$"""{"ts":{{Stopwatch.GetTimestamp()}},"seq":{{sequence}},"username":"user-{{sequence}}","email":"user-{{sequence}}@example.com","pad":"{{Pad}}"}""";
}
