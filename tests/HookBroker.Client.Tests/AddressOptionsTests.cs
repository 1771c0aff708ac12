using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HookBroker.Client.Tests;

/// <summary>Broker addresses (<c>Address</c> / <c>Addresses</c>): configuration binding and the validation messages.</summary>
public sealed class AddressOptionsTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public static TheoryData<string[], string> BadAddresses => new()
    {
        { ["broker-1:5000"], "HookBrokerClientOptions.Addresses[0] must be an absolute http(s) URI such as http://broker-1:5000 (got 'broker-1:5000')." },
        { ["http://a:5000", "broker-2"], "HookBrokerClientOptions.Addresses[1] must be an absolute http(s) URI such as http://broker-1:5000 (got 'broker-2')." },
        { ["http://a:5000", "https://b:5000"], "HookBrokerClientOptions.Addresses must all use the same scheme (one connection setting, plaintext or TLS, for every node): HookBrokerClientOptions.Addresses[1] is 'https://b:5000/' but HookBrokerClientOptions.Addresses[0] is 'http://a:5000/'." },
        { ["http://a:5000/hooks"], "HookBrokerClientOptions.Addresses[0] must be only scheme, host and port, such as http://broker-1:5000 (got 'http://a:5000/hooks')." },
        { ["http://a:5000", "http://A:5000/"], "HookBrokerClientOptions.Addresses[1] lists 'http://a:5000/' a second time." },
    };

    private static Uri ParseLoosely(string text) => new(text, UriKind.RelativeOrAbsolute);

    [Theory(Timeout = 10_000)]
    [MemberData(nameof(BadAddresses))]
    public void The_client_names_a_bad_address(string[] addresses, string message)
    {
        var options = new HookBrokerClientOptions();
        foreach (var address in addresses)
        {
            options.Addresses.Add(ParseLoosely(address));
        }

        var error = Assert.Throws<ArgumentException>(() => new HookBrokerClient(options));

        Assert.StartsWith(message, error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public void The_client_needs_an_address_and_a_positive_connect_timeout()
    {
        var options = new HookBrokerClientOptions { Address = null!, ConnectTimeout = TimeSpan.Zero };

        var error = Assert.Throws<ArgumentException>(() => new HookBrokerClient(options));

        Assert.Contains(
            "HookBrokerClientOptions.Address must be an absolute http(s) URI (got ''); for several broker nodes set HookBrokerClientOptions.Addresses.",
            error.Message,
            StringComparison.Ordinal);
        Assert.Contains("HookBrokerClientOptions.ConnectTimeout must be positive (got 00:00:00).", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public async Task One_address_or_several_of_one_scheme_make_a_client()
    {
        await using var single = new HookBrokerClient(new HookBrokerClientOptions { Address = new Uri("http://broker:5000") });
        var options = new HookBrokerClientOptions();
        options.Addresses.Add(new Uri("https://broker-1:5001"));
        options.Addresses.Add(new Uri("https://[::1]:5001"));
        await using var several = new HookBrokerClient(options);
    }

    [Fact(Timeout = 10_000)]
    public void The_worker_binds_addresses_from_configuration_and_they_take_precedence_over_address()
    {
        using var host = WorkerHostFrom(new Dictionary<string, string?>
        {
            ["HookBroker:Address"] = "http://ignored:5000",
            ["HookBroker:Addresses:0"] = "http://broker-1:5000",
            ["HookBroker:Addresses:1"] = "http://broker-2:5000",
            ["HookBroker:ConnectTimeout"] = "00:00:02",
            ["HookBroker:Group"] = "jobs",
        });

        var options = host.Services.GetRequiredService<IOptions<HookWorkerOptions>>().Value;

        Assert.Equal([new Uri("http://broker-1:5000"), new Uri("http://broker-2:5000")], options.Addresses);
        Assert.Equal(TimeSpan.FromSeconds(2), options.ConnectTimeout);
    }

    [Fact(Timeout = 10_000)]
    public async Task The_worker_host_does_not_start_with_mixed_schemes_and_says_why()
    {
        using var host = WorkerHostFrom(new Dictionary<string, string?>
        {
            ["HookBroker:Addresses:0"] = "http://broker-1:5000",
            ["HookBroker:Addresses:1"] = "https://broker-2:5001",
            ["HookBroker:Group"] = "jobs",
        });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(Token));

        Assert.Contains(
            "HookWorkerOptions.Addresses must all use the same scheme (one connection setting, plaintext or TLS, for every node): " +
            "HookWorkerOptions.Addresses[1] is 'https://broker-2:5001/' but HookWorkerOptions.Addresses[0] is 'http://broker-1:5000/'.",
            error.Message,
            StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public async Task The_app_integration_binds_client_addresses_and_does_not_start_with_a_bad_one()
    {
        var good = AppFrom(new Dictionary<string, string?>
        {
            ["HookBroker:Client:Addresses:0"] = "http://broker-1:5000",
            ["HookBroker:Client:Addresses:1"] = "http://broker-2:5000",
        });
        await using (good)
        {
            var client = good.Services.GetRequiredService<IOptions<HookBrokerAppOptions>>().Value.Client;
            Assert.Equal([new Uri("http://broker-1:5000"), new Uri("http://broker-2:5000")], client.Addresses);
        }

        await using var bad = AppFrom(new Dictionary<string, string?>
        {
            ["HookBroker:Client:Addresses:0"] = "http://broker-1:5000",
            ["HookBroker:Client:Addresses:1"] = "broker-2",
        });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => bad.StartAsync(Token));

        Assert.Contains(
            "HookBrokerAppOptions.Client.Addresses[1] must be an absolute http(s) URI such as http://broker-1:5000 (got 'broker-2').",
            error.Message,
            StringComparison.Ordinal);
    }

    private static IHost WorkerHostFrom(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddHookWorker(new Hooks().Event("job", () => { }), o => builder.Configuration.GetSection("HookBroker").Bind(o));
        return builder.Build();
    }

    private static WebApplication AppFrom(Dictionary<string, string?> settings)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddHookBroker(o => builder.Configuration.GetSection("HookBroker").Bind(o));
        return builder.Build();
    }
}
