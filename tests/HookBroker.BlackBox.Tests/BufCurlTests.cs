using HookBroker.BlackBox.Tests.Infrastructure;
using BrokerApi = HookBroker.Protocol.V1.HookBroker;
using SettleKind = HookBroker.Protocol.V1.SettleKind;
using SettleStatus = HookBroker.Protocol.V1.SettleStatus;

namespace HookBroker.BlackBox.Tests;

/// <summary>
/// The broker used the way the README tells a newcomer to: `buf curl` with nothing but server reflection, no proto file.
/// </summary>
public sealed class BufCurlTests
{
    private const string UserCreated = """{"event":"user_created","args":{"username":"ali","email":"ali@example.com"}}""";
    private static readonly TimeSpan DeliveryTimeout = TimeSpan.FromSeconds(15);

    [Fact(Timeout = 60_000)]
    public async Task Buf_curl_lists_the_broker_services_and_methods_through_server_reflection()
    {
        var buf = BufCli.RequireInstalled();
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var broker = new BrokerProcess();
        await broker.StartAsync(cancellationToken);

        var services = await buf.ListServicesAsync(broker.GrpcAddress, cancellationToken);
        var methods = await buf.ListMethodsAsync(broker.GrpcAddress, cancellationToken);

        Assert.True(services.ExitCode == 0, services.ToString());
        Assert.Superset(
            new HashSet<string> { "hookbroker.v1.HookBroker", "hookbroker.v1.HookBrokerAdmin", "grpc.health.v1.Health" },
            Lines(services.StdOut));
        Assert.True(methods.ExitCode == 0, methods.ToString());
        Assert.Superset(
            new HashSet<string>
            {
                "hookbroker.v1.HookBroker/Raise",
                "hookbroker.v1.HookBroker/RaiseStream",
                "hookbroker.v1.HookBroker/Subscribe",
                "hookbroker.v1.HookBroker/WatchInterest",
                "hookbroker.v1.HookBrokerAdmin/ListGroups",
            },
            Lines(methods.StdOut));
        broker.AssertNoErrorsLogged();
    }

    [Fact(Timeout = 60_000)]
    public async Task Buf_curl_raise_is_unrouted_without_a_group_and_reaches_a_subscribed_group()
    {
        var buf = BufCli.RequireInstalled();
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var broker = new BrokerProcess();
        await broker.StartAsync(cancellationToken);

        // No group listens yet: a silent no-op, like a Backendpy event without hooks.
        var unrouted = await buf.CallAsync(broker.GrpcAddress, "hookbroker.v1.HookBroker/Raise", UserCreated, cancellationToken);
        Assert.Equal(0, unrouted.GetProperty("routedGroups").GetInt32());
        Assert.Equal("", unrouted.GetProperty("eventId").GetString());

        using var channel = broker.CreateChannel();
        await using var worker = await TestWorker.SubscribeAsync(
            new BrokerApi.HookBrokerClient(channel), "email-sender", ["user_created"], maxInFlight: 10, cancellationToken);
        Assert.Equal("email-sender", worker.Subscribed.Group);

        var routed = await buf.CallAsync(broker.GrpcAddress, "hookbroker.v1.HookBroker/Raise", UserCreated, cancellationToken);
        var eventId = routed.GetProperty("eventId").GetString();
        Assert.False(string.IsNullOrEmpty(eventId), $"no eventId in {routed}");
        Assert.Equal(1, routed.GetProperty("routedGroups").GetInt32());
        Assert.False(routed.GetProperty("duplicate").GetBoolean());

        var delivery = await worker.NextDeliveryAsync(DeliveryTimeout, cancellationToken);
        Assert.Equal(eventId, delivery.EventId);
        Assert.Equal("user_created", delivery.Event);
        Assert.Equal(1, delivery.Attempt);
        Assert.Equal("ali", delivery.Args.Fields["username"].StringValue);
        Assert.Equal("ali@example.com", delivery.Args.Fields["email"].StringValue);

        await worker.AckAsync([delivery.DeliveryId], cancellationToken);
        var confirmation = await worker.NextConfirmationAsync(DeliveryTimeout, cancellationToken);
        Assert.Equal(delivery.DeliveryId, confirmation.DeliveryId);
        Assert.Equal(SettleKind.Ack, confirmation.Kind);
        Assert.Equal(SettleStatus.Confirmed, confirmation.Status);
        broker.AssertNoErrorsLogged();
    }

    private static HashSet<string> Lines(string text) =>
        [.. text.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)];
}
