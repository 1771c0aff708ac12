using System.Net;
using HookBroker.Broker.Configuration;
using HookBroker.Broker.Hosting;
using HookBroker.Broker.Services;
using HookBroker.Broker.Storage;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

// `--health` (the container health check) asks the running broker's /healthz and exits 0 or 1; no host is built.
if (HealthProbe.IsRequested(args))
{
    return await HealthProbe.RunAsync(args);
}

// appsettings.json sits beside the binary; the data folder (HookBroker:DataPath) stays relative to the working folder.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Services.AddHookBrokerServer(builder.Configuration);

// Ports and address come from the same validated settings (HookBroker:ListenAddress, GrpcPort, HttpPort).
var listen = builder.Configuration.GetSection(BrokerOptions.Section).Get<BrokerOptions>() ?? new BrokerOptions();
builder.WebHost.ConfigureKestrel(kestrel =>
{
    if (!IPAddress.TryParse(listen.ListenAddress, out var address))
    {
        throw new InvalidOperationException($"HookBroker:ListenAddress '{listen.ListenAddress}' is not an IP address (e.g. 127.0.0.1 or 0.0.0.0)");
    }

    // gRPC: plaintext HTTP/2 (prior knowledge), as grpcurl -plaintext and buf curl --http2-prior-knowledge expect.
    kestrel.Listen(address, listen.GrpcPort, o => o.Protocols = HttpProtocols.Http2);
    // Plain HTTP/1.1 for /healthz (load balancers, container health checks).
    kestrel.Listen(address, listen.HttpPort, o => o.Protocols = HttpProtocols.Http1);
});
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = listen.ShutdownTimeout);

var app = builder.Build();
app.MapGrpcService<HookBrokerService>();
app.MapGrpcService<HookBrokerAdminService>();
app.MapGrpcReflectionService();
app.MapGrpcHealthChecksService();
app.MapGet("/healthz", () => Results.Text("ok"));

// Start problems a user can fix get one clear message and a non-zero exit code, not a stack trace.
try
{
    // Validate here, before the host starts, so a bad setting is reported once, without the host's stack trace.
    _ = app.Services.GetRequiredService<IOptions<BrokerOptions>>().Value;
    await app.RunAsync();
    return 0;
}
catch (OptionsValidationException ex)
{
    await Console.Error.WriteLineAsync("hookbroker: invalid configuration (appsettings.json or HOOKBROKER__* variables):");
    foreach (var failure in ex.Failures)
    {
        await Console.Error.WriteLineAsync("  - " + failure);
    }

    return 2;
}
catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
{
    await Console.Error.WriteLineAsync($"hookbroker: cannot listen: {ex.Message} (set HookBroker:GrpcPort / HookBroker:HttpPort)");
    return 3;
}
catch (StorageInUseException ex)
{
    await Console.Error.WriteLineAsync($"hookbroker: cannot open storage: {ex.Message}");
    return 4;
}

/// <summary>The broker's entry point (public for in-process tests).</summary>
public partial class Program;
