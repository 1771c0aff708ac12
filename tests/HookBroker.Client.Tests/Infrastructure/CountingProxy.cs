using System.Collections.Concurrent;
using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using HookBroker.Protocol.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HookBroker.Client.Tests.Infrastructure;

/// <summary>
/// A gRPC pass-through in the test process, between the SDK and a real broker, that counts what crosses the wire:
/// RaiseStream calls, their request messages and items, and unary Raise calls. It proxies Raise and RaiseStream only
/// (workers and admin calls go to the broker directly). With <see cref="RaiseStreamUnimplemented"/> it plays an older
/// broker that answers RaiseStream with UNIMPLEMENTED; <see cref="FailNextRaises"/> makes it answer raises with a failure
/// itself, as a broker would (a per-item status on the stream, the call's status for unary). <see cref="Raised"/> keeps
/// every raise it received, read with the public messages (as any client generated from the proto sees them).
/// </summary>
internal sealed class CountingProxy : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly GrpcChannel upstream;
    private long streamCalls;
    private long streamMessages;
    private long streamItems;
    private long unaryRaises;
    private long failuresLeft;
    private long failedRaises;
    private StatusCode failure = StatusCode.Unavailable;
    private volatile TaskCompletionSource? answersHeld;

    private CountingProxy(WebApplication app, GrpcChannel upstream, Uri address)
    {
        this.app = app;
        this.upstream = upstream;
        Address = address;
    }

    public Uri Address { get; }

    public bool RaiseStreamUnimplemented { get; set; }

    public long StreamCalls => Interlocked.Read(ref streamCalls);

    public long StreamMessages => Interlocked.Read(ref streamMessages);

    public long StreamItems => Interlocked.Read(ref streamItems);

    public long UnaryRaises => Interlocked.Read(ref unaryRaises);

    /// <summary>Raises answered with an injected failure so far (<see cref="FailNextRaises"/>).</summary>
    public long FailedRaises => Interlocked.Read(ref failedRaises);

    /// <summary>Every raise received (unary and stream items, failed ones included), in the order they arrived.</summary>
    public ConcurrentQueue<RaiseRequest> Raised { get; } = new();

    /// <summary>Holds back every RaiseStream answer (the broker's, already received) until <see cref="ReleaseAnswers"/>.</summary>
    public void HoldAnswers() => answersHeld = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Lets the answers held by <see cref="HoldAnswers"/> through, and every later one.</summary>
    public void ReleaseAnswers() => answersHeld?.TrySetResult();

    /// <summary>
    /// Answers the next <paramref name="count"/> raises (unary or stream items) with <paramref name="code"/> itself,
    /// without forwarding them; <see cref="long.MaxValue"/> fails every raise until called again with 0.
    /// </summary>
    public void FailNextRaises(long count, StatusCode code = StatusCode.Unavailable)
    {
        failure = code;
        Interlocked.Exchange(ref failuresLeft, count);
    }

    private HookBroker.Protocol.V1.HookBroker.HookBrokerClient Upstream => new(upstream);

    /// <summary>True when the raise at hand is to be failed (<see cref="FailNextRaises"/>): takes one failure.</summary>
    private bool TakeFailure()
    {
        while (Interlocked.Read(ref failuresLeft) is var left && left > 0)
        {
            if (left == long.MaxValue || Interlocked.CompareExchange(ref failuresLeft, left - 1, left) == left)
            {
                Interlocked.Increment(ref failedRaises);
                return true;
            }
        }

        return false;
    }

    private Status InjectedFailure => new(failure, "failure injected by the test proxy");

    public static async Task<CountingProxy> StartAsync(BrokerProcess broker, CancellationToken cancellationToken)
    {
        var port = FreePorts.Reserve(1)[0];
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        var holder = new ProxyHolder();
        builder.Services.AddSingleton(holder);
        var app = builder.Build();
        app.MapGrpcService<ProxyService>();
        var proxy = new CountingProxy(app, GrpcChannel.ForAddress(broker.GrpcAddress), new Uri($"http://127.0.0.1:{port}"));
        holder.Proxy = proxy;
        await app.StartAsync(cancellationToken);
        return proxy;
    }

    public async ValueTask DisposeAsync()
    {
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            await app.StopAsync(stop.Token);
        }

        await app.DisposeAsync();
        upstream.Dispose();
    }

    private sealed class ProxyHolder
    {
        public CountingProxy Proxy { get; set; } = null!;
    }

    private sealed class ProxyService(ProxyHolder holder) : HookBroker.Protocol.V1.HookBroker.HookBrokerBase
    {
        public override async Task<RaiseResponse> Raise(RaiseRequest request, ServerCallContext context)
        {
            var proxy = holder.Proxy;
            Interlocked.Increment(ref proxy.unaryRaises);
            proxy.Raised.Enqueue(request);
            if (proxy.TakeFailure())
            {
                throw new RpcException(proxy.InjectedFailure);
            }

            return await proxy.Upstream.RaiseAsync(request, deadline: context.Deadline, cancellationToken: context.CancellationToken);
        }

        public override async Task RaiseStream(
            IAsyncStreamReader<RaiseStreamRequest> requestStream, IServerStreamWriter<RaiseStreamResponse> responseStream, ServerCallContext context)
        {
            var proxy = holder.Proxy;
            if (proxy.RaiseStreamUnimplemented)
            {
                throw new RpcException(new Status(StatusCode.Unimplemented, "RaiseStream is not served here (test proxy)."));
            }

            Interlocked.Increment(ref proxy.streamCalls);
            using var call = proxy.Upstream.RaiseStream(cancellationToken: context.CancellationToken);
            using var writing = new SemaphoreSlim(1); // the injected failures and the broker's answers share the response stream
            var forward = Task.Run(async () =>
            {
                await foreach (var message in requestStream.ReadAllAsync(context.CancellationToken))
                {
                    Interlocked.Increment(ref proxy.streamMessages);
                    Interlocked.Add(ref proxy.streamItems, message.Items.Count);
                    var forwarded = new RaiseStreamRequest();
                    var failed = new RaiseStreamResponse();
                    foreach (var item in message.Items)
                    {
                        proxy.Raised.Enqueue(item.Raise);
                        if (proxy.TakeFailure())
                        {
                            var status = proxy.InjectedFailure;
                            failed.Results.Add(new HookBroker.Protocol.V1.RaiseResult { Sequence = item.Sequence, Status = new ItemStatus { Code = (int)status.StatusCode, Message = status.Detail } });
                        }
                        else
                        {
                            forwarded.Items.Add(item);
                        }
                    }

                    if (failed.Results.Count > 0)
                    {
                        await writing.WaitAsync(context.CancellationToken);
                        try
                        {
                            await responseStream.WriteAsync(failed, context.CancellationToken);
                        }
                        finally
                        {
                            writing.Release();
                        }
                    }

                    if (forwarded.Items.Count > 0)
                    {
                        await call.RequestStream.WriteAsync(forwarded, context.CancellationToken);
                    }
                }

                await call.RequestStream.CompleteAsync();
            });
            await foreach (var response in call.ResponseStream.ReadAllAsync(context.CancellationToken))
            {
                if (proxy.answersHeld is { } held)
                {
                    await held.Task.WaitAsync(context.CancellationToken);
                }

                await writing.WaitAsync(context.CancellationToken);
                try
                {
                    await responseStream.WriteAsync(response, context.CancellationToken);
                }
                finally
                {
                    writing.Release();
                }
            }

            await forward;
        }
    }
}
