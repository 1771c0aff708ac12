using Grpc.Core;
using HookBroker.Protocol.V1;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>
/// Many unary raises at once on the SQLite engine (they share group commits): each is answered for itself — stored
/// with an id of its own, a duplicate of its key's first event, or refused — and one refused raise fails no other.
/// </summary>
public sealed class ConcurrentUnaryRaiseTests : IAsyncLifetime
{
    private readonly DirectoryInfo _data = Directory.CreateTempSubdirectory("hookbroker-concurrent-raise-");
    private BrokerTestHost _broker = null!;

    public async ValueTask InitializeAsync() =>
        _broker = await BrokerTestHost.StartAsync(new Dictionary<string, string?> { ["Storage"] = "Sqlite", ["DataPath"] = _data.FullName });

    public async ValueTask DisposeAsync()
    {
        Assert.Empty(_broker.Logs.Errors);
        await _broker.DisposeAsync();
        _data.Delete(recursive: true);
    }

    [Fact(Timeout = 60_000)]
    public async Task Concurrent_raises_are_answered_each_for_itself_and_a_refused_one_fails_alone()
    {
        // A durable group, its worker gone: every routed raise is stored.
        await using (await _broker.SubscribeAsync("email-sender", ["user.*"]))
        {
        }

        var calls = Enumerable.Range(0, 64).Select(i => RaiseAsync(i)).ToList();
        var results = await Task.WhenAll(calls);

        var refused = results.Where(r => r.Error is not null).ToList();
        Assert.Equal(4, refused.Count);
        Assert.All(refused, r => Assert.Equal(StatusCode.InvalidArgument, r.Error!.StatusCode));

        var keyed = results.Where(r => r.Index % 16 == 7).Select(r => r.Response!).ToList();
        Assert.Single(keyed, r => !r.Duplicate);
        Assert.Single(keyed.Select(r => r.EventId).Distinct());

        var plain = results.Where(r => r.Error is null && r.Index % 16 != 7).Select(r => r.Response!).ToList();
        Assert.Equal(56, plain.Count);
        Assert.All(plain, r => Assert.Equal(1, r.RoutedGroups));
        Assert.DoesNotContain(plain, r => r.Duplicate);
        Assert.Equal(57, plain.Select(r => r.EventId).Append(keyed[0].EventId).Distinct().Count());

        // Every stored event reaches the group once.
        await using var worker = await _broker.SubscribeAsync("email-sender", ["user.*"]);
        var deliveries = await worker.TakeAsync(57);
        Assert.Equal(57, deliveries.Select(d => d.EventId).Distinct().Count());
        Assert.Null(await worker.NothingWithinAsync(TimeSpan.FromMilliseconds(200)));
    }

    // Every 16th raise (from the 6th) has a label with a space (refused); every 16th from the 8th carries the same idempotency key.
    private async Task<(int Index, RaiseResponse? Response, RpcException? Error)> RaiseAsync(int index)
    {
        try
        {
            var label = index % 16 == 5 ? "user created" : "user.created";
            var response = await _broker.RaiseAsync(label, new { n = index }, r =>
            {
                if (index % 16 == 7)
                {
                    r.IdempotencyKey = "signup-42";
                }
            });
            return (index, response, null);
        }
        catch (RpcException ex)
        {
            return (index, null, ex);
        }
    }
}
