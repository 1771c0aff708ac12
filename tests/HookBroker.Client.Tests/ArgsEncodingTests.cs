using System.Text.Json;
using Google.Protobuf.WellKnownTypes;
using HookBroker.Client.Tests.Infrastructure;
using HookBroker.Protocol.V1;

namespace HookBroker.Client.Tests;

/// <summary>
/// The SDK encodes an app's args straight into the serialized <c>google.protobuf.Struct</c> a raise carries, without
/// building a Struct, and the whole raise request straight into its serialized form: what reaches the wire, read with the
/// public proto by a <see cref="CountingProxy"/>, is the Struct of the args' JSON and the raise's every field, batched or
/// unary, and the real broker accepts it.
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

    [Theory(Timeout = 120_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Every_field_of_a_raise_reaches_the_wire_as_the_public_message_reads_it(bool batching)
    {
        await using var broker = new BrokerProcess();
        await broker.StartAsync(Token);
        await DurableGroups.CreateAsync(broker, "shapes", "shape_raised", Token);
        await using var proxy = await CountingProxy.StartAsync(broker, Token);
        await using var client = new HookBrokerClient(new HookBrokerClientOptions { Address = proxy.Address, Batching = batching, Source = "wire-tésts" });
        var keyed = new RaiseOptions { IdempotencyKey = "kéy-1", OrderingKey = "örder-1" };
        keyed.Headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        keyed.Headers["empty"] = string.Empty;
        keyed.Headers["ünï"] = new string('v', 300);

        await client.ExecuteEventAsync("shape_raised", new { n = 1 }, keyed, Token).AsTask().WaitAsync(Wait, Token);
        var waited = await client.ExecuteEventAsync("shape_raised", null, new RaiseOptions { WaitTimeout = TimeSpan.FromMilliseconds(1_250) }, Token).AsTask().WaitAsync(Wait, Token);
        await client.ExecuteEventAsync("shape_raised", new { n = 3 }, new RaiseOptions { WaitTimeout = TimeSpan.Zero }, Token).AsTask().WaitAsync(Wait, Token);
        await client.ExecuteEventAsync("shape_raised", cancellationToken: Token).AsTask().WaitAsync(Wait, Token);

        var raised = proxy.Raised.ToArray();
        Assert.Equal(4, raised.Length);
        Assert.All(raised, r => Assert.Equal("shape_raised", r.Event));
        Assert.All(raised, r => Assert.Equal("wire-tésts", r.Source));

        Assert.Equal("kéy-1", raised[0].IdempotencyKey);
        Assert.Equal("örder-1", raised[0].OrderingKey);
        Assert.Equal(keyed.Headers, raised[0].Headers);
        Assert.Equal(Struct.Parser.ParseJson("""{"n":1}"""), raised[0].Args);
        Assert.Null(raised[0].WaitTimeout);

        Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromMilliseconds(1_250)), raised[1].WaitTimeout);
        Assert.Equal(HookOutcome.TimedOut, Assert.Single(waited.Outcomes).Outcome);
        Assert.Equal(Duration.FromTimeSpan(TimeSpan.Zero), raised[2].WaitTimeout); // present, though empty

        // Without a key of their own, raises get a generated one: 32 hex digits, a different one each.
        foreach (var generated in raised[1..])
        {
            Assert.Matches("^[0-9a-f]{32}$", generated.IdempotencyKey);
            Assert.Empty(generated.OrderingKey);
            Assert.Empty(generated.Headers);
        }

        Assert.Equal(3, raised[1..].Select(r => r.IdempotencyKey).Distinct().Count());
        Assert.Null(raised[3].Args);
        using var channel = broker.CreateChannel();
        Assert.Equal(4UL, (await new HookBrokerAdmin.HookBrokerAdminClient(channel).GetStatsAsync(new GetStatsRequest(), cancellationToken: Token)).RaisedEvents);
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
