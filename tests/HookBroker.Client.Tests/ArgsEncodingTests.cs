using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using HookBroker.Client.Tests.Infrastructure;
using HookBroker.Protocol.V1;

namespace HookBroker.Client.Tests;

/// <summary>
/// The SDK encodes an app's args straight into the serialized <c>google.protobuf.Struct</c> a raise carries, without
/// building a Struct: what reaches the wire, read with the public proto by a <see cref="CountingProxy"/>, is the Struct of
/// the args' JSON, batched or unary, and the real broker accepts it.
/// </summary>
public sealed class ArgsEncodingTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    /// <summary>Args of every shape, each with the Struct it must arrive as (null: the Struct of its JSON).</summary>
    private static IReadOnlyList<(object? Args, Struct Expected)> Cases()
    {
        var cases = new List<(object?, Struct?)>
        {
            (new { username = "ali", email = "ali@example.com" }, null),
            (new { text = "line\nbreak \"quoted\" \\ é ü 😀 \u0001 </script>", empty = string.Empty }, null),
            (new Dictionary<string, object?> { ["clé"] = 1, ["with \"quote\""] = true, ["tab\there"] = "x" }, null),
            (new { n = 2.5, negative = -7, zero = 0, huge = 1e300, tiny = 1e-7, third = 1.0 / 3 }, null),
            (new { on = true, off = false, nothing = (string?)null }, null),
            (new { user = new { id = 1, tags = new[] { "a", "b" }, address = new { city = "Paris" } }, list = new object?[] { 1, "x", null, new { deep = new[] { 1, 2 } }, Array.Empty<int>() } }, null),
            // Strings and nested messages of 128 bytes and more take a length of two bytes or more.
            (new { pad = new string('x', 300), longer = new string('y', 20_000) }, null),
            (new { inner = new { a = new string('y', 200), b = 1, c = new { d = new string('z', 130) } } }, null),
            (new { }, new Struct()),
            (null, new Struct()),
            (JsonDocument.Parse("""{"a":[1,{"b":null}],"c":"d","e":{}}""").RootElement, null),
            (JsonDocument.Parse("null").RootElement, new Struct()),
            // Integers a double cannot hold travel as strings with every digit; those it can are numbers.
            (
                new { safe = 9_007_199_254_740_992L, unsafeLong = 9_007_199_254_740_993L, below = -9_007_199_254_740_993L, max = ulong.MaxValue, dec = 12345678901234567890123456789m },
                new Struct
                {
                    Fields =
                    {
                        ["safe"] = Value.ForNumber(9_007_199_254_740_992d),
                        ["unsafeLong"] = Value.ForString("9007199254740993"),
                        ["below"] = Value.ForString("-9007199254740993"),
                        ["max"] = Value.ForString("18446744073709551615"),
                        ["dec"] = Value.ForString("12345678901234567890123456789"),
                    },
                }),
        };
        return [.. cases.Select(c => (c.Item1, c.Item2 ?? Struct.Parser.ParseJson(JsonSerializer.Serialize(c.Item1))))];
    }

    [Theory(Timeout = 120_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Args_reach_the_wire_as_the_struct_of_their_json_and_the_broker_takes_them(bool batching)
    {
        await using var broker = new BrokerProcess();
        await broker.StartAsync(Token);
        await DurableGroups.CreateAsync(broker, "shapes", "shape_raised", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        await using var client = new HookBrokerClient(new HookBrokerClientOptions { Address = proxy.Address, Batching = batching });
        var cases = Cases();

        foreach (var (args, _) in cases)
        {
            var result = await client.ExecuteEventAsync("shape_raised", args, cancellationToken: Token).AsTask().WaitAsync(Wait, Token);
            Assert.Equal(1, result.RoutedGroups);
        }

        var raised = proxy.Raised.ToArray();
        Assert.Equal(cases.Count, raised.Length);
        for (var i = 0; i < cases.Count; i++)
        {
            Assert.Equal(cases[i].Expected, raised[i].Args ?? new Struct());
        }

        Assert.Equal(batching ? 0 : cases.Count, proxy.UnaryRaises);
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 30_000)]
    public async Task Args_that_are_not_a_json_object_are_refused_before_anything_is_sent()
    {
        // Nothing listens at this address: the refusal happens in the SDK.
        await using var client = new HookBrokerClient(new HookBrokerClientOptions { Address = new Uri("http://127.0.0.1:9") });

        var array = await Assert.ThrowsAsync<ArgumentException>(() => client.ExecuteEventAsync("shape_raised", new[] { 1, 2 }, cancellationToken: Token).AsTask());
        var text = await Assert.ThrowsAsync<ArgumentException>(() => client.ExecuteEventAsync("shape_raised", "just text", cancellationToken: Token).AsTask());

        Assert.Contains("must be a JSON object", array.Message, StringComparison.Ordinal);
        Assert.Contains("Array", array.Message, StringComparison.Ordinal);
        Assert.Contains("String", text.Message, StringComparison.Ordinal);
    }
}
