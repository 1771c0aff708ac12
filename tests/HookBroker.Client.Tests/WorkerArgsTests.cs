using System.Collections.Concurrent;
using System.Text.Json;
using HookBroker.Client.Tests.Infrastructure;

namespace HookBroker.Client.Tests;

/// <summary>
/// Args of every shape make the whole trip: encoded by the SDK into the serialized Struct, stored and delivered as bytes
/// by the real broker, read by the worker straight into JSON, and bound to a hook taking the whole args object.
/// </summary>
public sealed class WorkerArgsTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static readonly string[] Shapes =
    [
        "{}",
        """{"username":"ali","email":"ali@example.com","ts":123456789012345,"seq":7}""",
        """{"text":"line\nbreak \"quoted\" \\ é ü 中文 😀 \u0001 </script>","empty":"","clé":true,"off":false,"nothing":null}""",
        """{"n":2.5,"negative":-7,"zero":0,"third":0.3333333333333333,"tiny":1E-07,"safe":9007199254740992,"unsafe":"9007199254740993"}""",
        """{"user":{"id":1,"tags":["a","b"],"address":{"city":"Paris"}},"list":[1,"x",null,{"deep":[1,[2,[]]]},{}],"e":{}}""",
        "{\"pad\":\"" + new string('x', 20_000) + "\"}",
    ];

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 60_000)]
    public async Task Args_of_every_shape_reach_the_hook_as_they_were_raised()
    {
        await using var broker = new BrokerProcess();
        await broker.StartAsync(Token);
        await DurableGroups.CreateAsync(broker, "shapes", "shape_raised", Token);
        var received = new ConcurrentDictionary<int, string>();
        var hooks = new Hooks().Event("shape_raised", (Dictionary<string, JsonElement> args, HookContext context) =>
            received[int.Parse(context.Headers["shape"], System.Globalization.CultureInfo.InvariantCulture)] = Normalized(args));
        using var worker = await WorkerHost.StartAsync(broker, "shapes", hooks, Token);
        await using var client = new HookBrokerClient(new HookBrokerClientOptions { Address = broker.GrpcAddress });

        for (var i = 0; i < Shapes.Length; i++)
        {
            var args = JsonDocument.Parse(Shapes[i]).RootElement;
            var options = new RaiseOptions { Headers = { ["shape"] = i.ToString(System.Globalization.CultureInfo.InvariantCulture) } };
            await client.ExecuteEventAsync("shape_raised", args, options, Token).AsTask().WaitAsync(Wait, Token);
        }

        await Poll.UntilAsync(() => received.Count == Shapes.Length, Wait, "every shape to reach the hook", Token);
        for (var i = 0; i < Shapes.Length; i++)
        {
            Assert.Equal(Normalized(JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(Shapes[i])!), received[i]);
        }

        broker.AssertNoErrorsLogged();
    }

    /// <summary>The same text for the same args: each value written back as System.Text.Json writes an element.</summary>
    private static string Normalized(Dictionary<string, JsonElement> args) => JsonSerializer.Serialize(args);
}
