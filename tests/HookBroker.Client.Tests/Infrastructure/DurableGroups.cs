using HookBroker.Protocol.V1;

namespace HookBroker.Client.Tests.Infrastructure;

/// <summary>Sets up groups on a broker process with the generated client.</summary>
internal static class DurableGroups
{
    /// <summary>Makes <paramref name="group"/> a durable group of <paramref name="label"/> with no worker online: raises are stored.</summary>
    public static async Task CreateAsync(BrokerProcess broker, string group, string label, CancellationToken cancellationToken)
    {
        using var channel = broker.CreateChannel();
        using var call = new HookBroker.Protocol.V1.HookBroker.HookBrokerClient(channel).Subscribe(cancellationToken: cancellationToken);
        var start = new SubscribeStart { Group = group };
        start.Events.Add(label);
        await call.RequestStream.WriteAsync(new SubscribeRequest { Subscribe = start }, cancellationToken);
        Assert.True(await call.ResponseStream.MoveNext(cancellationToken));
        Assert.NotNull(call.ResponseStream.Current.Subscribed);
        await call.RequestStream.CompleteAsync();
    }
}
